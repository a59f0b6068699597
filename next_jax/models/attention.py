"""Multi-head / grouped-query / multi-query self-attention with RoPE and an optional KV cache."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from next_jax.models import cache as cache_lib
from next_jax.models.config import DecoderConfig
from next_jax.models.layers import KeyStream, fan_in_init, param
from next_jax.models.partitioning import constrain


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

    def _project(self, x: jax.Array, kernel: nnx.Param, bias: nnx.Param | None, names: tuple) -> jax.Array:
        y = jnp.einsum("ble,ehd->blhd", x, kernel.get_value().astype(self.dtype))
        if bias is not None:
            y = y + bias.get_value().astype(self.dtype)
        return constrain(y, names)

    def __call__(
        self,
        x: jax.Array,
        positions: jax.Array,
        mask: jax.Array,
        layer_cache: cache_lib.LayerCache | None = None,
        index: jax.Array | None = None,
    ) -> tuple[jax.Array, cache_lib.LayerCache | None]:
        """Attend `x` `[B, L, embed]`; with `layer_cache`, write new keys/values at `index` and attend to all.

        `mask` is `[B, 1, L, S]` bool with S = L (no cache) or the cache length.
        """
        inv_freq = np.asarray(self.inv_freq, dtype=np.float32)
        q = self._project(x, self.q, self.q_bias, ("batch", "length", "heads", "kv"))
        k = self._project(x, self.k, self.k_bias, ("batch", "length", "kv_heads", "kv"))
        v = self._project(x, self.v, self.v_bias, ("batch", "length", "kv_heads", "kv"))
        q, k = apply_rope(q, positions, inv_freq), apply_rope(k, positions, inv_freq)
        new_cache = None
        if layer_cache is not None:
            new_cache = cache_lib.LayerCache(
                constrain(cache_lib.write_kv(layer_cache.k, k, index), cache_lib.KV_AXES),
                constrain(cache_lib.write_kv(layer_cache.v, v, index), cache_lib.KV_AXES),
            )
            out = _attend_cache(q, new_cache.k.astype(self.dtype), new_cache.v.astype(self.dtype), mask, self.scale)
        else:
            out = jax.nn.dot_product_attention(q, k, v, mask=mask, scale=self.scale)
        out = constrain(out, ("batch", "length", "heads", "kv"))
        y = jnp.einsum("blhd,hde->ble", out, self.o.get_value().astype(self.dtype))
        if self.o_bias is not None:
            y = y + self.o_bias.get_value().astype(self.dtype)
        return y, new_cache


def _attend_cache(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array, scale: float) -> jax.Array:
    """Attention of `q` `[B, L, N, D]` over cache-layout keys/values `[B, H, S, D]` (N = H * groups).

    Contracts in the cache's own layout, so no per-step transpose of the whole cache; softmax in float32.
    """
    b, length, n, d = q.shape
    heads = k.shape[1]
    qg = q.reshape(b, length, heads, n // heads, d)
    scores = jnp.einsum("blhgd,bhsd->bhgls", qg, k, preferred_element_type=jnp.float32) * scale
    scores = jnp.where(mask[:, :, None], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jnp.einsum("bhgls,bhsd->blhgd", probs, v)
    return out.reshape(b, length, n, d)
