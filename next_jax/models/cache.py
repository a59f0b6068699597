"""The KV cache the sampler threads through decode steps, and the attention masks built from it."""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from next_jax.models import partitioning

# Logical axis names of the cache buffers (see next_jax.models.partitioning). Heads before length: a decode step
# contracts over (length, head_dim) per head, and this layout lets it do so without transposing the whole cache
# every step (which dominated decode time on CPU with the [batch, length, heads, dim] layout).
KV_AXES = ("batch", "kv_heads", "cache_length", "kv")
KEY_MASK_AXES = ("batch", "cache_length")


@flax.struct.dataclass
class LayerCache:
    """One layer's keys and values, `[batch, kv_heads, max_len, head_dim]` (RoPE already applied to `k`)."""

    k: jax.Array
    v: jax.Array


@flax.struct.dataclass
class Cache:
    """Per-layer keys/values, which slots hold real tokens, and the next write slot (shared by the batch).

    A decoder call with a cache writes its L new tokens at slots `[index, index + L)`, marks them valid in
    `key_mask` where their segment id is nonzero, and returns a cache whose `index` has advanced by L.
    """

    layers: tuple[LayerCache, ...]
    key_mask: jax.Array
    index: jax.Array

    @property
    def max_len(self) -> int:
        return self.key_mask.shape[1]

    @classmethod
    def zeros(
        cls, num_layers: int, batch: int, max_len: int, kv_heads: int, head_dim: int, dtype: jnp.dtype
    ) -> Cache:
        shape = (batch, kv_heads, max_len, head_dim)
        layers = tuple(
            LayerCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)) for _ in range(num_layers)
        )
        return cls(layers, jnp.zeros((batch, max_len), jnp.bool_), jnp.zeros((), jnp.int32))

    def logical_axes(self) -> Cache:
        """Same structure with each array replaced by its logical axis names (for `sharding_for`)."""
        layers = tuple(LayerCache(KV_AXES, KV_AXES) for _ in self.layers)
        return Cache(layers, KEY_MASK_AXES, ())

    def shardings(self, mesh: jax.sharding.Mesh, rules: partitioning.LogicalRules | None = None) -> Cache:
        """Same structure with each array replaced by its NamedSharding on `mesh` (batch-sharded by default).

        Use as `jax.device_put(cache, cache.shardings(mesh))` or as jit in/out shardings.
        """

        def one(names: tuple[str, ...], x: jax.Array) -> jax.sharding.NamedSharding:
            return partitioning.sharding_for(names, x.shape, mesh, rules)

        layers = tuple(LayerCache(one(KV_AXES, c.k), one(KV_AXES, c.v)) for c in self.layers)
        return Cache(layers, one(KEY_MASK_AXES, self.key_mask), one((), self.index))


def write(buffer: jax.Array, new: jax.Array, index: jax.Array) -> jax.Array:
    """Write `new` `[B, L, ...]` into `buffer` `[B, max_len, ...]` at slot `index` along axis 1."""
    starts = (0, index) + (0,) * (buffer.ndim - 2)
    return jax.lax.dynamic_update_slice(buffer, new.astype(buffer.dtype), starts)


def write_kv(buffer: jax.Array, new: jax.Array, index: jax.Array) -> jax.Array:
    """Write keys or values `new` `[B, L, H, D]` into `buffer` `[B, H, max_len, D]` at slot `index`."""
    new = jnp.swapaxes(new, 1, 2).astype(buffer.dtype)
    return jax.lax.dynamic_update_slice(buffer, new, (0, 0, index, 0))


def full_mask(
    length: int, segment_ids: jax.Array | None, prefix_mask: jax.Array | None, window: int, batch: int
) -> jax.Array:
    """`[B, 1, L, L]` mask for a whole (possibly packed) sequence without cache.

    Causal within equal nonzero segment ids; tokens flagged in `prefix_mask` also see later prefix tokens
    of their segment (prefix-LM); `window` > 0 limits each query to its `window` most recent slots.
    """
    q = jnp.arange(length)[:, None]
    k = jnp.arange(length)[None, :]
    allowed = jnp.broadcast_to(k <= q, (batch, length, length))
    if prefix_mask is not None:
        allowed = allowed | (prefix_mask[:, :, None] & prefix_mask[:, None, :])
    if window:
        allowed = allowed & (q - k < window)
    if segment_ids is not None:
        same = segment_ids[:, :, None] == segment_ids[:, None, :]
        allowed = allowed & same & (segment_ids[:, None, :] != 0)
    return allowed[:, None]


def cached_mask(
    index: jax.Array, length: int, key_mask: jax.Array, prefix_mask: jax.Array | None, window: int
) -> jax.Array:
    """`[B, 1, L, max_len]` mask for L new queries at slots `[index, index + L)` over the cache slots.

    `key_mask` must already include the new tokens. Prefix tokens of this call see each other both ways,
    so a prefill of a whole prompt reproduces the uncached prefix-LM mask.
    """
    max_len = key_mask.shape[1]
    q = index + jnp.arange(length)[:, None]
    k = jnp.arange(max_len)[None, :]
    allowed = k <= q
    if window:
        allowed = allowed & (q - k < window)
    allowed = allowed[None] & key_mask[:, None, :]
    if prefix_mask is not None:
        in_call = (k >= index) & (k < index + length)
        # prefix flag of the new token stored at slot k (slots outside this call are never prefix here)
        k_prefix = jnp.take(prefix_mask, jnp.clip(k[0] - index, 0, length - 1), axis=1) & in_call
        allowed = allowed | (prefix_mask[:, :, None] & k_prefix[:, None, :] & key_mask[:, None, :])
    return allowed[:, None]
