"""The training step's fast paths give the same numbers as the plain formulations they replace:
block-causal attention vs `jax.nn.dot_product_attention`, and `dense`'s hand-written gradient vs autodiff
of the plain matmul."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from next_jax.models import attention
from next_jax.models.config import DecoderConfig
from next_jax.models.decoder import Decoder
from next_jax.models.layers import dense

# Long enough for several query blocks (the last one partial), grouped-query heads, two window sizes.
LONG = DecoderConfig(
    vocab_size=97,
    num_layers=2,
    embed_dim=32,
    num_heads=4,
    num_kv_heads=2,
    head_dim=8,
    mlp_dim=64,
    layer_windows=(0, 70),
)
LENGTH = 300


def _packed_inputs(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tokens, positions and segment ids of two packed sequences per row plus trailing padding."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, LONG.vocab_size, (2, LENGTH)).astype(np.int32)
    segments = np.zeros((2, LENGTH), np.int32)
    positions = np.zeros((2, LENGTH), np.int32)
    for row, (first, total) in enumerate([(140, 290), (200, 260)]):
        segments[row, :first], segments[row, first:total] = 1, 2
        positions[row, :first] = np.arange(first)
        positions[row, first:total] = np.arange(total - first)
    return np.where(segments > 0, tokens, 0), positions, segments


def _loss_and_grads(model: Decoder, tokens, positions, segments, prefix_mask=None):
    graphdef, params = nnx.split(model, nnx.Param)
    valid = jnp.asarray(segments > 0)

    def loss(p):
        m = nnx.merge(graphdef, p)
        logits = m(tokens, positions=positions, segment_ids=segments, prefix_mask=prefix_mask)
        logp = jax.nn.log_softmax(logits, axis=-1)
        target = jnp.take_along_axis(logp, jnp.roll(tokens, -1, axis=1)[..., None], axis=-1)[..., 0]
        return -jnp.sum(jnp.where(valid, target, 0.0)), logits

    (value, logits), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
    return value, np.where(np.asarray(valid)[..., None], np.asarray(logits), 0.0), grads


@pytest.fixture(scope="module")
def long_model() -> Decoder:
    return Decoder(LONG, rngs=nnx.Rngs(3))


def test_block_causal_attention_matches_full_attention(long_model, monkeypatch):
    inputs = _packed_inputs(0)
    blocked = _loss_and_grads(long_model, *inputs)
    monkeypatch.setattr(attention, "QUERY_BLOCK", 10**6)  # one block: the jax.nn.dot_product_attention path
    full = _loss_and_grads(long_model, *inputs)
    assert attention.QUERY_BLOCK > LENGTH
    np.testing.assert_allclose(blocked[0], full[0], rtol=1e-5)
    np.testing.assert_allclose(blocked[1], full[1], atol=1e-5)
    for a, b in zip(jax.tree.leaves(blocked[2]), jax.tree.leaves(full[2]), strict=True):
        # float32 sums over 600 tokens in another order: compare against each tensor's own scale
        assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()


def test_prefix_lm_mask_does_not_take_the_causal_shortcut(long_model, monkeypatch):
    """Prompt tokens see later prompt tokens, so skipping future key blocks would be wrong there."""
    tokens, positions, segments = _packed_inputs(1)
    prefix = np.zeros_like(segments, bool)
    prefix[:, :200] = True  # spans the first block boundaries
    blocked = _loss_and_grads(long_model, tokens, positions, segments, prefix)
    monkeypatch.setattr(attention, "QUERY_BLOCK", 10**6)
    full = _loss_and_grads(long_model, tokens, positions, segments, prefix)
    np.testing.assert_allclose(blocked[1], full[1], atol=1e-5)
    # and the prefix really matters: a causal-only run differs on prompt positions
    causal = _loss_and_grads(long_model, tokens, positions, segments)
    assert np.abs(causal[1][:, :150] - full[1][:, :150]).max() > 1e-3


def test_attention_impl_choices_compute_the_same_function(long_model, monkeypatch):
    """'xla' (and 'cudnn', which is the XLA path on CPU) never take the query-block path and match 'auto'."""
    inputs = _packed_inputs(2)
    reference = _loss_and_grads(long_model, *inputs)  # 'auto': query blocks

    def no_blocks(*args, **kwargs):
        raise AssertionError("query-block path taken")

    monkeypatch.setattr(attention, "_attend_causal_blocks", no_blocks)
    with pytest.raises(AssertionError, match="query-block path"):
        _loss_and_grads(Decoder(LONG.replace(attention_impl="blocked"), rngs=nnx.Rngs(3)), *inputs)
    for impl in ("xla", "cudnn"):
        other = _loss_and_grads(Decoder(LONG.replace(attention_impl=impl), rngs=nnx.Rngs(3)), *inputs)
        np.testing.assert_allclose(other[0], reference[0], rtol=1e-5)
        np.testing.assert_allclose(other[1], reference[1], atol=1e-5)
        for a, b in zip(jax.tree.leaves(other[2]), jax.tree.leaves(reference[2]), strict=True):
            assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()
    with pytest.raises(ValueError, match="attention_impl"):
        LONG.replace(attention_impl="flash")


@pytest.mark.parametrize(
    "k, n, transposed",
    [(16, 48, False), (48, 16, False), (16, 48, True), (48, 16, True), (24, 24, False)],
)
def test_dense_gradient_equals_autodiff_of_the_matmul(k, n, transposed):
    rng = np.random.default_rng(k * n)
    x = jnp.asarray(rng.standard_normal((3, 5, k), np.float32))
    kernel = jnp.asarray(rng.standard_normal((n, k) if transposed else (k, n), np.float32))
    cotangent = jnp.asarray(rng.standard_normal((3, 5, n), np.float32))

    def plain(x, w):
        return jnp.einsum("ble,ne->bln" if transposed else "ble,en->bln", x, w)

    def ours(x, w):
        return dense(x, w, transposed=transposed)

    np.testing.assert_allclose(ours(x, kernel), plain(x, kernel), rtol=1e-6, atol=1e-6)
    expected = jax.grad(lambda x, w: jnp.sum(plain(x, w) * cotangent), argnums=(0, 1))(x, kernel)
    got = jax.grad(lambda x, w: jnp.sum(ours(x, w) * cotangent), argnums=(0, 1))(x, kernel)
    for a, b in zip(got, expected, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_dense_keeps_primal_dtypes_for_bf16_inputs_with_float32_output():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 4, 8), np.float32)).astype(jnp.bfloat16)
    table = jnp.asarray(rng.standard_normal((16, 8), np.float32)).astype(jnp.bfloat16)
    logits = dense(x, table, transposed=True, out_dtype=jnp.float32)
    assert logits.dtype == jnp.float32
    dx, dw = jax.grad(
        lambda x, w: jnp.sum(dense(x, w, transposed=True, out_dtype=jnp.float32) ** 2), argnums=(0, 1)
    )(x, table)
    assert dx.dtype == jnp.bfloat16 and dw.dtype == jnp.bfloat16
    ref_dx, ref_dw = jax.grad(
        lambda x, w: jnp.sum(jnp.einsum("ble,ve->blv", x, w, preferred_element_type=jnp.float32) ** 2),
        argnums=(0, 1),
    )(x, table)
    np.testing.assert_allclose(dx.astype(np.float32), ref_dx.astype(np.float32), rtol=2e-2, atol=2e-2)
    np.testing.assert_allclose(dw.astype(np.float32), ref_dw.astype(np.float32), rtol=2e-2, atol=2e-2)
