"""Across iterations the one trainer and sampler use exactly the weights of the iteration at hand: each
training run has its own checkpoints, and new parameters reach the compiled sampler without recompiling."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import seqio

from next_jax.decode.sampler import Sampler
from next_jax.models.config import DecoderConfig
from next_jax.models.registry import build_model
from next_jax.selftrain.runtime import ModelRuntime

CONFIG = DecoderConfig(vocab_size=259, num_layers=1, embed_dim=32, num_heads=2, num_kv_heads=2, head_dim=16,
                       mlp_dim=64)


def batches(seed: int, n: int):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        tokens = rng.integers(3, 259, (2, 32)).astype(np.int32)
        yield {"decoder_input_tokens": tokens, "decoder_target_tokens": np.roll(tokens, -1, axis=1),
               "decoder_loss_weights": np.ones((2, 32), np.float32)}


def allclose(a, b) -> bool:
    return all(np.allclose(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


@pytest.fixture(scope="module")
def runtime():
    return ModelRuntime(build_model(CONFIG, seed=0), seqio.ByteVocabulary(), length_buckets=(16,),
                        show_progress=False)


def test_each_iteration_trains_and_samples_its_own_weights(runtime, tmp_path):
    base = runtime.initial_params
    runtime.train(base, lambda: batches(1, 3), num_steps=3, checkpoint_dir=str(tmp_path / "iter_0" / "checkpoints"),
                  params_dir=str(tmp_path / "iter_0" / "params"), log_dir=tmp_path / "tb0")
    it0 = runtime.copy_params()
    runtime.train(base, lambda: batches(2, 3), num_steps=3, checkpoint_dir=str(tmp_path / "iter_1" / "checkpoints"),
                  params_dir=str(tmp_path / "iter_1" / "params"), log_dir=tmp_path / "tb1")
    it1 = runtime.copy_params()
    assert not allclose(it0, it1) and not allclose(base, it1)
    assert allclose(runtime.load(tmp_path / "iter_0" / "params"), it0)
    assert allclose(runtime.load(tmp_path / "iter_1" / "params"), it1)
    # iteration 1's checkpoints hold iteration 1's weights at its own final step
    assert runtime.trainer.checkpoints.latest_step() == 3
    assert runtime.trainer.restore_latest() == 3 and allclose(runtime.trainer.state.params, it1)
    # the base survived both runs (a restart copies what the first step donates)
    assert allclose(base, runtime.initial_params) and not any(x.is_deleted() for x in jax.tree.leaves(base))

    prompts = [[5, 6, 7], [8, 9]]
    kw = dict(num_samples=2, max_new_tokens=6, temperature=1.0, seed=3, prompt_ids=[11, 22])
    runtime.sample_with(it0)
    first = runtime.sampler.sample(prompts, **kw)
    compiled = runtime.sampler._compiled[next(iter(runtime.sampler._compiled))]
    cache_size = compiled._cache_size()
    runtime.sample_with(it1)
    second = runtime.sampler.sample(prompts, **kw)
    assert compiled._cache_size() == cache_size and len(runtime.sampler._compiled) == 1  # no recompilation
    fresh = Sampler(runtime.model_with(it1), eos_id=1, length_buckets=(16,)).sample(prompts, **kw)
    np.testing.assert_array_equal(second.tokens, fresh.tokens)
    np.testing.assert_allclose(second.logprobs, fresh.logprobs, atol=1e-5)
    # a few steps move the logits a little: the log-probs show which weights sampled
    assert np.abs(first.logprobs - second.logprobs).max() > 1e-3


def test_a_restart_into_a_used_checkpoint_directory_is_refused(runtime, tmp_path):
    runtime.train(runtime.initial_params, lambda: batches(3, 2), num_steps=2,
                  checkpoint_dir=str(tmp_path / "a" / "checkpoints"), params_dir=str(tmp_path / "a" / "params"),
                  log_dir=tmp_path / "tb")
    with pytest.raises(ValueError, match="own directory"):
        runtime.trainer.restart(runtime.initial_params, checkpoint_dir=str(tmp_path / "a" / "checkpoints"))


def test_fit_ends_cleanly_on_a_finite_input(runtime, tmp_path):
    runtime.trainer.restart(runtime.initial_params, checkpoint_dir=str(tmp_path / "finite"))
    runtime.trainer.fit(batches(4, 3), None)
    assert runtime.trainer.step == 3 and runtime.trainer.checkpoints.latest_step() == 3
    runtime.trainer.restart(runtime.initial_params, checkpoint_dir=None)
    runtime.trainer.fit(batches(4, 2), 10)
    assert runtime.trainer.step == 2


def test_sampling_keys_follow_prompt_ids_not_positions(runtime):
    runtime.sample_with(runtime.initial_params)
    kw = dict(num_samples=2, max_new_tokens=6, temperature=1.0, seed=9)
    a = runtime.sampler.sample([[5, 6, 7], [8, 9]], prompt_ids=[101, 202], **kw)
    b = runtime.sampler.sample([[8, 9], [5, 6, 7]], prompt_ids=[202, 101], **kw)
    np.testing.assert_array_equal(a.tokens[0], b.tokens[1])
    np.testing.assert_array_equal(a.tokens[1], b.tokens[0])
