"""The jitted KV-cache sampler against uncached full forward passes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_decoder import EOS, PAD

PROMPTS = [[5, 17, 23, 42, 8, 61, 7], [11, 4], [30, 31, 32, 33, 34]]


def full_forward_log_probs(full_logits, prompt: list[int], completion: list[int]) -> np.ndarray:
    """Log-probs of `completion` after `prompt` from one uncached forward pass over the whole sequence."""
    logits = full_logits(prompt + completion)[len(prompt) - 1 : -1]
    log_probs = np.asarray(jax.nn.log_softmax(jnp.asarray(logits), axis=-1))
    return log_probs[np.arange(len(completion)), completion]


def greedy_reference(full_logits, prompt: list[int], steps: int) -> list[int]:
    """Greedy decoding by re-running the full uncached forward pass at every step."""
    seq = list(prompt)
    for _ in range(steps):
        nxt = int(np.argmax(full_logits(seq)[-1]))
        seq.append(nxt)
        if nxt == EOS:
            break
    return seq[len(prompt) :]


def test_greedy_equals_step_by_step_full_forward(full_logits, sampler):
    out = sampler.sample(PROMPTS, num_samples=2, max_new_tokens=12, temperature=0.0)
    assert out.tokens.shape == (3, 2, 12)
    for i, prompt in enumerate(PROMPTS):
        expected = greedy_reference(full_logits, prompt, 12)
        for s in range(2):
            got = out.tokens[i, s, : out.lengths[i, s]].tolist()
            assert got == expected
            np.testing.assert_allclose(
                out.logprobs[i, s, : len(got)], full_forward_log_probs(full_logits, prompt, got), atol=2e-5
            )


def test_sampled_log_probs_equal_full_forward(full_logits, sampler):
    """For random (non-greedy) paths too, the cache reproduces the uncached model's scores."""
    out = sampler.sample(PROMPTS, num_samples=3, max_new_tokens=10, temperature=1.3, seed=4)
    for i, prompt in enumerate(PROMPTS):
        for s in range(3):
            n = out.lengths[i, s]
            completion = out.tokens[i, s, :n].tolist()
            np.testing.assert_allclose(
                out.logprobs[i, s, :n], full_forward_log_probs(full_logits, prompt, completion), atol=2e-5
            )
            assert np.all(out.tokens[i, s, n:] == PAD) and np.all(out.logprobs[i, s, n:] == 0)


def test_temperature_zero_is_deterministic_and_top_k_one_is_greedy(sampler):
    a = sampler.sample(PROMPTS, num_samples=2, max_new_tokens=12, temperature=0.0, seed=1)
    b = sampler.sample(PROMPTS, num_samples=2, max_new_tokens=12, temperature=0.0, seed=99)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    k1 = sampler.sample(PROMPTS, num_samples=2, max_new_tokens=12, temperature=1.0, top_k=1, seed=5)
    np.testing.assert_array_equal(a.tokens, k1.tokens)


def test_positive_temperature_is_diverse_and_seeded(sampler):
    kwargs = dict(num_samples=8, max_new_tokens=10, temperature=1.0, top_p=0.95)
    a = sampler.sample(PROMPTS, seed=7, **kwargs)
    again = sampler.sample(PROMPTS, seed=7, **kwargs)
    other = sampler.sample(PROMPTS, seed=8, **kwargs)
    np.testing.assert_array_equal(a.tokens, again.tokens)
    np.testing.assert_array_equal(a.logprobs, again.logprobs)
    assert not np.array_equal(a.tokens, other.tokens)
    for i in range(len(PROMPTS)):
        distinct = {tuple(c) for c in a.completions()[i]}
        assert len(distinct) >= 4, distinct


def test_mixed_length_padding_does_not_change_results(sampler):
    """A prompt decodes the same alone (short bucket) and batched behind a longer prompt (long bucket)."""
    short, long = PROMPTS[1], list(range(4, 24))  # buckets 8 vs 32
    alone = sampler.sample([short], num_samples=2, max_new_tokens=8, temperature=0.0)
    mixed = sampler.sample([short, long], num_samples=2, max_new_tokens=8, temperature=0.0)
    np.testing.assert_array_equal(alone.tokens[0], mixed.tokens[0])
    np.testing.assert_allclose(alone.logprobs[0], mixed.logprobs[0], atol=2e-5)
    # Sampling too: the random stream belongs to (seed, prompt index, sample index), not the batch shape.
    alone = sampler.sample([short], num_samples=3, max_new_tokens=8, temperature=1.0, seed=3)
    mixed = sampler.sample([short, long], num_samples=3, max_new_tokens=8, temperature=1.0, seed=3)
    np.testing.assert_array_equal(alone.tokens[0], mixed.tokens[0])


def test_each_row_stops_at_eos(tiny_model, full_logits):
    """With the first greedy token of one prompt declared EOS, that row stops after one token."""
    from next_jax.decode.sampler import Sampler

    first = greedy_reference(full_logits, PROMPTS[0], 1)[0]
    sampler = Sampler(tiny_model, eos_id=[first, EOS], pad_id=PAD, length_buckets=(8,))
    out = sampler.sample(PROMPTS, num_samples=1, max_new_tokens=6, temperature=0.0)
    assert out.lengths[0, 0] == 1 and out.tokens[0, 0, 0] == first
    assert np.all(out.tokens[0, 0, 1:] == PAD)
    for i in (1, 2):
        n = out.lengths[i, 0]
        assert n == 6 or out.tokens[i, 0, n - 1] in (first, EOS)


def test_rejects_empty_input(sampler):
    with pytest.raises(ValueError):
        sampler.sample([], max_new_tokens=2)
    with pytest.raises(ValueError):
        sampler.sample([[]], max_new_tokens=2)


def test_shared_and_repeated_prompt_caches_agree(tiny_model, sampler):
    """Sharing each prompt's cache among its samples changes nothing but the memory read per step."""
    from next_jax.decode.sampler import Sampler

    repeated = Sampler(
        tiny_model, eos_id=EOS, pad_id=PAD, length_buckets=(8, 16, 32), share_prompt_cache=False
    )
    assert sampler.share_prompt_cache and not repeated.share_prompt_cache
    for kwargs in (dict(temperature=0.0), dict(temperature=1.0, top_k=20, top_p=0.9, seed=2)):
        a = sampler.sample(PROMPTS, num_samples=3, max_new_tokens=10, **kwargs)
        b = repeated.sample(PROMPTS, num_samples=3, max_new_tokens=10, **kwargs)
        np.testing.assert_array_equal(a.tokens, b.tokens)
        np.testing.assert_allclose(a.logprobs, b.logprobs, atol=2e-5)
