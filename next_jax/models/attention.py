"""Multi-head / grouped-query / multi-query self-attention with RoPE and an optional KV cache."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from next_jax.models import cache as cache_lib
from next_jax.models.config import DecoderConfig
from next_jax.models.layers import KeyStream, dense, fan_in_init, param
from next_jax.models.partitioning import constrain

# Query block of causal self-attention without a cache: block i attends only to keys before its end, which
# skips the masked upper triangle (at length 512: 10/16 of the full score matrix; the whole attention ran
# about 2x faster on CPU than XLA's `jax.nn.dot_product_attention`, measured on the `small` preset).
QUERY_BLOCK = 128


def rope_inverse_frequencies(config: DecoderConfig) -> np.ndarray:
    """RoPE inverse frequencies `[head_dim // 2]` in float32, with Llama-3 or linear scaling if configured.

    Computed in float32 like the HF reference so that imported checkpoints reproduce its logits.
    """
    dim = config.head_dim
    exponents = np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / np.float32(dim)
    inv = (np.float32(1.0) / (np.float32(config.rope_theta) ** exponents)).astype(np.float32)
    factor = np.float32(config.rope_scaling_factor)
    if config.rope_scaling == "linear":
        inv = inv / factor
    elif config.rope_scaling == "llama3":
        # Llama 3.1: keep high frequencies, divide low ones by `factor`, interpolate in between.
        old_len = np.float32(config.rope_original_max_len)
        low, high = np.float32(config.rope_low_freq_factor), np.float32(config.rope_high_freq_factor)
        wavelen = np.float32(2 * math.pi) / inv
        scaled = np.where(wavelen > old_len / low, inv / factor, inv)
        smooth = (old_len / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old_len / high) & ~(wavelen > old_len / low)
        inv = np.where(medium, smoothed, scaled)
    return inv.astype(np.float32)


def apply_rope(x: jax.Array, positions: jax.Array, inv_freq: np.ndarray) -> jax.Array:
    """Rotate `x` `[B, L, heads, head_dim]` by `positions` `[B, L]` (half-split layout, as in HF Llama)."""
    freqs = positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq)
    angles = jnp.concatenate([freqs, freqs], axis=-1)[:, :, None, :]
    cos, sin = jnp.cos(angles).astype(x.dtype), jnp.sin(angles).astype(x.dtype)
    x1, x2 = jnp.split(x, 2, axis=-1)
    return x * cos + jnp.concatenate([-x2, x1], axis=-1) * sin


class Attention(nnx.Module):
    """Self-attention; `num_kv_heads` < `num_heads` shares each key/value head among a group of queries."""

    def __init__(self, config: DecoderConfig, *, keys: KeyStream, dtype: jnp.dtype, param_dtype: jnp.dtype):
        e, h, kvh, d = config.embed_dim, config.num_heads, config.num_kv_heads, config.head_dim
        self.q = param(keys, fan_in_init(0, (1, 2)), (e, h, d), ("embed", "heads", "kv"), param_dtype)
        self.k = param(keys, fan_in_init(0, (1, 2)), (e, kvh, d), ("embed", "kv_heads", "kv"), param_dtype)
        self.v = param(keys, fan_in_init(0, (1, 2)), (e, kvh, d), ("embed", "kv_heads", "kv"), param_dtype)
        self.o = param(keys, fan_in_init((0, 1), 2), (h, d, e), ("heads", "kv", "embed"), param_dtype)
        zeros = jax.nn.initializers.zeros
        bias = config.qkv_bias
        self.q_bias = param(None, zeros, (h, d), ("heads", "kv"), param_dtype) if bias else None
        self.k_bias = param(None, zeros, (kvh, d), ("kv_heads", "kv"), param_dtype) if bias else None
        self.v_bias = param(None, zeros, (kvh, d), ("kv_heads", "kv"), param_dtype) if bias else None
        self.o_bias = param(None, zeros, (e,), ("embed",), param_dtype) if config.out_bias else None
        self.inv_freq = tuple(float(f) for f in rope_inverse_frequencies(config))
        self.scale = d**-0.5
        self.dtype = dtype
        self.impl = config.attention_impl

    def _project(self, x: jax.Array, kernel: nnx.Param, bias: nnx.Param | None, names: tuple) -> jax.Array:
        w = kernel.get_value().astype(self.dtype)
        e, h, d = w.shape
        y = dense(x, w.reshape(e, h * d)).reshape(*x.shape[:-1], h, d)
        if bias is not None:
            y = y + bias.get_value().astype(self.dtype)
        return constrain(y, names)

    def __call__(
        self,
        x: jax.Array,
        positions: jax.Array,
        mask: jax.Array,
        layer_cache: cache_lib.AnyLayerCache | None = None,
        index: jax.Array | None = None,
        *,
        causal: bool = False,
    ) -> tuple[jax.Array, cache_lib.AnyLayerCache | None]:
        """Attend `x` `[B, L, embed]`; with `layer_cache`, write new keys/values at `index` and attend to all.

        `mask` is `[B, 1, L, S]` bool with S = L (no cache) or the cache length. `causal` promises that
        `mask` allows no key after its query (no prefix-LM mask), so future keys may be skipped.
        """
        inv_freq = np.asarray(self.inv_freq, dtype=np.float32)
        q = self._project(x, self.q, self.q_bias, ("batch", "length", "heads", "kv"))
        k = self._project(x, self.k, self.k_bias, ("batch", "length", "kv_heads", "kv"))
        v = self._project(x, self.v, self.v_bias, ("batch", "length", "kv_heads", "kv"))
        q, k = apply_rope(q, positions, inv_freq), apply_rope(k, positions, inv_freq)
        new_cache = None
        if layer_cache is not None:
            new_cache = layer_cache.write(k, v, index)
            out = _attend_cache(q, new_cache, mask, self.scale)
        else:
            out = self._attend(q, k, v, mask, causal)
        out = constrain(out, ("batch", "length", "heads", "kv"))
        w = self.o.get_value().astype(self.dtype)
        h, d, e = w.shape
        y = dense(out.reshape(*out.shape[:-2], h * d), w.reshape(h * d, e))
        if self.o_bias is not None:
            y = y + self.o_bias.get_value().astype(self.dtype)
        return y, new_cache

    def _attend(self, q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array, causal: bool) -> jax.Array:
        """Attention without a cache, by `config.attention_impl` ('auto' = 'blocked')."""
        impl = "blocked" if self.impl == "auto" else self.impl
        if impl == "cudnn" and q.dtype in (jnp.bfloat16, jnp.float16) and jax.default_backend() == "gpu":
            # The mask still applies; `is_causal` only lets cuDNN skip the blocks above the diagonal.
            return jax.nn.dot_product_attention(
                q, k, v, mask=mask, scale=self.scale, is_causal=causal, implementation="cudnn"
            )
        if impl == "blocked" and causal and q.shape[1] > QUERY_BLOCK:
            return _attend_causal_blocks(q, k, v, mask, self.scale, QUERY_BLOCK)
        if impl == "scan" and q.shape[1] > QUERY_BLOCK and q.shape[1] % QUERY_BLOCK == 0:
            return _attend_query_scan(q, k, v, mask, self.scale, QUERY_BLOCK)
        return jax.nn.dot_product_attention(q, k, v, mask=mask, scale=self.scale)


def _attend_causal_blocks(
    q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array, scale: float, block: int
) -> jax.Array:
    """Causal attention of `q` `[B, L, N, D]` over `k`, `v` `[B, L, H, D]` (N = H * groups), `block` queries
    at a time, each block reading only the keys up to its own last position.

    q/k/v are transposed to a heads-major layout once, not per block; scores and softmax in float32.
    `mask` `[B, 1, L, L]` still applies inside each block (causality on the diagonal block, segments,
    windows), so only the skipped keys' masking is assumed.
    """
    b, length, n, d = q.shape
    heads = k.shape[2]
    qh = jnp.transpose(q.reshape(b, length, heads, n // heads, d), (0, 2, 3, 1, 4))  # [B, H, G, L, D]
    kh, vh = jnp.swapaxes(k, 1, 2), jnp.swapaxes(v, 1, 2)  # [B, H, L, D]
    # In float32, scale the queries rather than the 4x-larger block scores (XLA:CPU would fuse that multiply
    # into the score matmul, which slows its matmul library down); bf16 queries would lose precision.
    score_scale = scale
    if qh.dtype == jnp.float32:
        qh, score_scale = qh * scale, None
    outs = []
    for start in range(0, length, block):
        end = min(start + block, length)
        scores = jnp.einsum(
            "bhgld,bhsd->bhgls", qh[:, :, :, start:end], kh[:, :, :end], preferred_element_type=jnp.float32
        )
        if score_scale is not None:
            scores = scores * score_scale
        scores = jnp.where(mask[:, :, None, start:end, :end], scores, jnp.finfo(jnp.float32).min)
        probs = jax.nn.softmax(scores, axis=-1).astype(vh.dtype)
        outs.append(jnp.einsum("bhgls,bhsd->bhgld", probs, vh[:, :, :end]))
    out = jnp.concatenate(outs, axis=3)  # [B, H, G, L, D]
    return jnp.transpose(out, (0, 3, 1, 2, 4)).reshape(b, length, n, d)


def _attend_query_scan(
    q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array, scale: float, block: int
) -> jax.Array:
    """Attention of `q` `[B, L, N, D]` over `k`, `v` `[B, L, H, D]` as a `lax.scan` over query blocks of
    `block` (L a multiple of it), each against all keys under `mask` `[B, 1, L, L]`.

    The body is rematerialised, so the backward pass keeps only each block's inputs and recomputes its
    scores: live scores are one block's `[B, H, G, block, L]`, and the compiled program has one body
    whatever L is (the unrolled 'blocked' form compiles a piece per block).
    """
    b, length, n, d = q.shape
    heads = k.shape[2]
    blocks = length // block
    qh = jnp.transpose(q.reshape(b, blocks, block, heads, n // heads, d), (1, 0, 3, 4, 2, 5))
    kh, vh = jnp.swapaxes(k, 1, 2), jnp.swapaxes(v, 1, 2)  # [B, H, L, D]
    mask_blocks = jnp.moveaxis(mask.reshape(b, 1, blocks, block, length), 2, 0)  # [blocks, B, 1, block, L]

    @jax.checkpoint
    def one_block(q_block: jax.Array, mask_block: jax.Array) -> jax.Array:
        scores = jnp.einsum("bhgld,bhsd->bhgls", q_block, kh, preferred_element_type=jnp.float32) * scale
        scores = jnp.where(mask_block[:, :, None], scores, jnp.finfo(jnp.float32).min)
        probs = jax.nn.softmax(scores, axis=-1).astype(vh.dtype)
        return jnp.einsum("bhgls,bhsd->bhgld", probs, vh)

    _, out = jax.lax.scan(lambda c, xs: (c, one_block(*xs)), None, (qh, mask_blocks))  # [blocks, B, H, G, l, D]
    return jnp.transpose(out, (1, 0, 4, 2, 3, 5)).reshape(b, length, n, d)


def _attend_cache(
    q: jax.Array,
    cache: cache_lib.AnyLayerCache,
    mask: jax.Array,
    scale: float,
) -> jax.Array:
    """Attention of `q` `[B, L, N, D]` over a layer's cache (N = H * groups), `mask` `[B, 1, L, S]`.

    Contracts in the cache's own `[B, H, S, D]` layout, so no per-step transpose of the whole cache; scores
    and softmax in float32.
    """
    if isinstance(cache, cache_lib.SharedPrefixLayerCache):
        return _attend_shared_prefix(q, cache, mask, scale)
    b, length, n, d = q.shape
    heads = cache.k.shape[1]
    k, v = cache.k.astype(q.dtype), cache.v.astype(q.dtype)
    qg = q.reshape(b, length, heads, n // heads, d)
    scores = jnp.einsum("blhgd,bhsd->bhgls", qg, k, preferred_element_type=jnp.float32) * scale
    scores = jnp.where(mask[:, :, None], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jnp.einsum("bhgls,bhsd->blhgd", probs, v)
    return out.reshape(b, length, n, d)


def _attend_shared_prefix(
    q: jax.Array, cache: cache_lib.SharedPrefixLayerCache, mask: jax.Array, scale: float
) -> jax.Array:
    """`_attend_cache` over a shared-prefix cache: each prompt's keys are read once for all its samples.

    Queries go to `[prompts, H, samples * L * groups, D]`, so the prefix part is one matmul per prompt and
    head and the own part one per row and head, and both score blocks share that layout (no transposes of
    scores or cache). The own part is a batched matrix-vector product when decoding, bound by memory.
    """
    rows, length, n, d = q.shape
    prompts, heads, samples, _, _ = cache.k.shape
    groups, prefix_len = n // heads, cache.prefix_len
    f32 = jnp.float32
    qh = jnp.transpose(q.reshape(prompts, samples, length, heads, groups, d), (0, 3, 1, 2, 4, 5))
    pk, pv = cache.prefix_k.astype(q.dtype), cache.prefix_v.astype(q.dtype)
    k, v = cache.k.astype(q.dtype), cache.v.astype(q.dtype)
    batch2, batch3 = ((0, 1), (0, 1)), ((0, 1, 2), (0, 1, 2))
    # [prompts, H, samples * L * groups, prefix_len] and [prompts, H, samples, L * groups, own_len]
    prefix_scores = jax.lax.dot_general(
        qh.reshape(prompts, heads, -1, d), pk, (((3,), (3,)), batch2), preferred_element_type=f32
    )
    own_scores = jax.lax.dot_general(
        qh.reshape(prompts, heads, samples, -1, d), k, (((4,), (4,)), batch3), preferred_element_type=f32
    )
    scores = jnp.concatenate([prefix_scores, own_scores.reshape(*prefix_scores.shape[:3], -1)], axis=-1)
    # mask [rows, 1, L, S] -> [prompts, 1, samples, L, 1, S], like the scores' [prompts, H, samples, L, groups, S]
    mask = mask.reshape(prompts, samples, 1, length, 1, -1).transpose(0, 2, 1, 3, 4, 5)
    scores = scores.reshape(prompts, heads, samples, length, groups, -1)
    scores = jnp.where(mask, scores * scale, jnp.finfo(f32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jax.lax.dot_general(
        probs[..., :prefix_len].reshape(prompts, heads, -1, prefix_len), pv, (((3,), (2,)), batch2)
    )
    own_probs = probs[..., prefix_len:].reshape(prompts, heads, samples, length * groups, -1)
    out = out + jax.lax.dot_general(own_probs, v, (((4,), (3,)), batch3)).reshape(out.shape)
    # [prompts, H, samples, L, groups, D] -> [rows, L, N, D]
    out = out.reshape(prompts, heads, samples, length, groups, d).transpose(0, 2, 3, 1, 4, 5)
    return out.reshape(rows, length, n, d)
