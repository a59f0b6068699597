"""Decoder behaviour: cached decoding equals the full forward, masking, packing, prefix LM, dtypes."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from next_jax.models.config import DecoderConfig
from next_jax.models.decoder import Decoder

FAMILIES = ["gemma", "llama", "palm", "qwen2"]


@nnx.jit
def forward(model, tokens, positions=None, segment_ids=None, prefix_mask=None):
    """Jitted full forward: one compile per shape beats op-by-op dispatch on CPU."""
    return model(tokens, positions=positions, segment_ids=segment_ids, prefix_mask=prefix_mask)


@pytest.fixture(scope="module")
def models(family_configs, random_model) -> dict[str, Decoder]:
    return {name: random_model(cfg) for name, cfg in family_configs.items()}


def _left_padded(lengths: list[int], width: int, vocab: int, seed: int = 0):
    """Tokens, segment ids and per-row positions for left-padded rows of the given true lengths."""
    rng = np.random.RandomState(seed)
    tokens = rng.randint(1, vocab, (len(lengths), width)).astype(np.int32)
    segments = np.zeros_like(tokens)
    for row, n in enumerate(lengths):
        segments[row, width - n :] = 1
        tokens[row, : width - n] = 0
    positions = np.maximum(np.cumsum(segments, axis=1) - 1, 0).astype(np.int32)
    return jnp.asarray(tokens), jnp.asarray(segments), jnp.asarray(positions)


def _jitted(model: Decoder):
    """jit-compiled prefill/step functions over the split model (the way the sampler drives it)."""
    graphdef, state = nnx.split(model)

    @jax.jit
    def call(state, tokens, positions, segment_ids, prefix_mask, cache):
        return nnx.merge(graphdef, state)(
            tokens, positions=positions, segment_ids=segment_ids, prefix_mask=prefix_mask, cache=cache
        )

    return lambda *args: call(state, *args), call


@pytest.mark.parametrize("family", FAMILIES)
def test_prefill_then_steps_match_full_forward_on_left_padded_rows(models, family):
    model = models[family]
    tokens, segments, positions = _left_padded([10, 7, 4], width=10, vocab=model.config.vocab_size)
    full = forward(model, tokens, positions=positions, segment_ids=segments)
    assert full.shape == (3, 10, model.config.vocab_size) and full.dtype == jnp.float32

    run, compiled = _jitted(model)
    prompt = 6
    logits, cache = run(
        tokens[:, :prompt], positions[:, :prompt], segments[:, :prompt], None, model.init_cache(3, 16)
    )
    np.testing.assert_array_equal(
        np.asarray(cache.key_mask[:, :prompt]), np.asarray(segments[:, :prompt] != 0)
    )
    assert not np.asarray(cache.key_mask[:, prompt:]).any()
    steps = [logits]
    for t in range(prompt, 10):
        logits, cache = run(tokens[:, t : t + 1], positions[:, t : t + 1], None, None, cache)
        steps.append(logits)
    assert int(cache.index) == 10
    # static shapes: one trace for the prefill shape, one for all decode steps
    assert compiled._cache_size() == 2
    cached = np.concatenate([np.asarray(s) for s in steps], axis=1)
    valid = np.asarray(segments) != 0
    np.testing.assert_allclose(cached[valid], np.asarray(full)[valid], atol=2e-5, rtol=1e-5)


def test_left_padding_does_not_change_real_tokens(models):
    model = models["llama"]
    tokens, segments, positions = _left_padded([8, 5], width=8, vocab=model.config.vocab_size)
    padded = np.asarray(forward(model, tokens, positions=positions, segment_ids=segments))
    alone = np.asarray(forward(model, tokens[1:, 3:]))
    np.testing.assert_allclose(padded[1, 3:], alone[0], atol=2e-5)
    # without the segment ids the pads leak into the real tokens: the mask is what keeps them apart
    leaky = np.asarray(forward(model, tokens, positions=positions))
    assert np.abs(leaky[1, 3:] - alone[0]).max() > 1e-3


@pytest.mark.parametrize("family", ["llama", "gemma"])
def test_packed_sequences_match_separate_runs(models, family):
    model = models[family]
    rng = np.random.RandomState(1)
    a, b = rng.randint(1, 128, 5), rng.randint(1, 128, 4)
    tokens = jnp.asarray(np.concatenate([a, b, [0]])[None], jnp.int32)
    segments = jnp.asarray([[1] * 5 + [2] * 4 + [0]], jnp.int32)
    positions = jnp.asarray([list(range(5)) + list(range(4)) + [0]], jnp.int32)
    packed = np.asarray(forward(model, tokens, positions=positions, segment_ids=segments))
    np.testing.assert_allclose(packed[0, :5], np.asarray(forward(model, jnp.asarray(a[None])))[0], atol=2e-5)
    np.testing.assert_allclose(packed[0, 5:9], np.asarray(forward(model, jnp.asarray(b[None])))[0], atol=2e-5)


def test_attention_is_causal(models):
    model = models["qwen2"]
    tokens = jnp.asarray(np.random.RandomState(2).randint(1, 128, (1, 8)), jnp.int32)
    changed = tokens.at[0, 5].set((tokens[0, 5] + 1) % 128)
    before, after = np.asarray(forward(model, tokens)), np.asarray(forward(model, changed))
    np.testing.assert_allclose(before[0, :5], after[0, :5], atol=1e-6)
    assert np.abs(before[0, 5:] - after[0, 5:]).max() > 1e-3


def test_prefix_tokens_attend_bidirectionally_and_cache_agrees(models):
    model = models["palm"]
    tokens = jnp.asarray(np.random.RandomState(3).randint(1, 128, (2, 8)), jnp.int32)
    prefix = jnp.asarray([[1, 1, 1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0, 0]], bool)
    full = np.asarray(forward(model, tokens, prefix_mask=prefix))
    # token 3 is in row 0's prefix: the first token sees it; token 6 is not: nothing before it sees it
    in_prefix = np.asarray(forward(model, tokens.at[0, 3].set((tokens[0, 3] + 1) % 128), prefix_mask=prefix))
    assert np.abs(in_prefix[0, 0] - full[0, 0]).max() > 1e-3
    after_prefix = np.asarray(
        forward(model, tokens.at[:, 6].set((tokens[:, 6] + 1) % 128), prefix_mask=prefix)
    )
    np.testing.assert_allclose(after_prefix[:, :6], full[:, :6], atol=1e-6)

    run, _ = _jitted(model)
    logits, cache = run(tokens[:, :4], None, None, prefix[:, :4], model.init_cache(2, 8))
    steps = [logits]
    for t in range(4, 8):
        logits, cache = run(tokens[:, t : t + 1], None, None, None, cache)
        steps.append(logits)
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=2e-5)


def test_sliding_window_layers_cache_consistently(models):
    config = dataclasses.replace(models["qwen2"].config, layer_windows=(3, 0))
    windowed = nnx.merge(
        nnx.graphdef(nnx.eval_shape(lambda: Decoder(config, rngs=nnx.Rngs(0)))), nnx.state(models["qwen2"])
    )
    tokens = jnp.asarray(np.random.RandomState(4).randint(1, 128, (1, 9)), jnp.int32)
    full = np.asarray(forward(windowed, tokens))
    assert np.abs(full[0, 4:] - np.asarray(forward(models["qwen2"], tokens))[0, 4:]).max() > 1e-3
    run, _ = _jitted(windowed)
    logits, cache = run(tokens[:, :5], None, None, None, windowed.init_cache(1, 12))
    steps = [logits]
    for t in range(5, 9):
        logits, cache = run(tokens[:, t : t + 1], None, None, None, cache)
        steps.append(logits)
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=2e-5)


def test_bfloat16_compute_returns_float32_logits_close_to_float32(models):
    reference = models["llama"]
    low = nnx.merge(
        nnx.graphdef(
            nnx.eval_shape(
                lambda: Decoder(
                    reference.config, rngs=nnx.Rngs(0), dtype=jnp.bfloat16, param_dtype=jnp.bfloat16
                )
            )
        ),
        jax.tree.map(lambda x: x.astype(jnp.bfloat16), nnx.state(reference)),
    )
    assert low.layers[0].attn.q.get_value().dtype == jnp.bfloat16
    tokens = jnp.asarray(np.random.RandomState(5).randint(1, 128, (2, 6)), jnp.int32)
    out, ref = forward(low, tokens), np.asarray(forward(reference, tokens))
    assert out.dtype == jnp.float32
    assert np.abs(np.asarray(out) - ref).max() < 0.05 * np.abs(ref).max()
    cache = low.init_cache(2, 8, dtype=jnp.bfloat16)
    step, cache = _jitted(low)[0](tokens, None, None, None, cache)
    assert cache.layers[0].k.dtype == jnp.bfloat16 and step.dtype == jnp.float32


def test_remat_gives_the_same_loss_and_gradients(models):
    plain = models["gemma"]
    remat_config = dataclasses.replace(plain.config, remat=True)
    remat = nnx.merge(
        nnx.graphdef(nnx.eval_shape(lambda: Decoder(remat_config, rngs=nnx.Rngs(0)))), nnx.state(plain)
    )
    tokens = jnp.asarray(np.random.RandomState(6).randint(1, 128, (2, 6)), jnp.int32)

    def loss(model):
        return jax.nn.log_softmax(model(tokens)).mean()

    grad = nnx.jit(nnx.value_and_grad(loss))
    (l1, g1), (l2, g2) = grad(plain), grad(remat)
    np.testing.assert_allclose(l1, l2, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_tied_and_untied_output_projections(models):
    assert models["llama"].lm_head is not None and models["gemma"].lm_head is None
    palm = models["palm"]
    hidden = jnp.ones((1, 1, palm.config.embed_dim))
    normed = palm.final_norm(hidden)
    expected = normed @ palm.embedder.embedding.get_value().T / np.sqrt(palm.config.embed_dim)
    np.testing.assert_allclose(palm.logits(hidden), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "fields",
    [
        dict(family="gpt"),
        dict(activation="gelu"),
        dict(norm="batch"),
        dict(num_heads=4, num_kv_heads=3),
        dict(head_dim=7),
        dict(layer_windows=(4,)),
        dict(rope_scaling="yarn"),
    ],
)
def test_config_rejects_unsupported_settings(fields):
    with pytest.raises(ValueError):
        DecoderConfig(**fields)
