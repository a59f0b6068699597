"""The KV cache the sampler threads through decode steps, and the attention masks built from it."""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from next_jax.models import partitioning
from next_jax.models.partitioning import constrain

# Logical axis names of the cache buffers (see next_jax.models.partitioning). Heads before length: a decode step
# contracts over (length, head_dim) per head, and this layout lets it do so without transposing the whole cache
# every step (which dominated decode time on CPU with the [batch, length, heads, dim] layout).
KV_AXES = ("batch", "kv_heads", "cache_length", "kv")
KEY_MASK_AXES = ("batch", "cache_length")
# A shared-prefix cache's own keys/values: [prompts, kv_heads, samples, length, head_dim].
GROUPED_KV_AXES = ("batch", "kv_heads", None, "cache_length", "kv")


@flax.struct.dataclass
class LayerCache:
    """One layer's keys and values, `[batch, kv_heads, max_len, head_dim]` (RoPE already applied to `k`)."""

    k: jax.Array
    v: jax.Array

    def write(self, k: jax.Array, v: jax.Array, index: jax.Array) -> LayerCache:
        """This cache with new keys/values `[B, L, kv_heads, head_dim]` stored at slots `[index, index + L)`."""
        return LayerCache(
            constrain(write_kv(self.k, k, index), KV_AXES), constrain(write_kv(self.v, v, index), KV_AXES)
        )

    def logical_axes(self) -> LayerCache:
        return LayerCache(KV_AXES, KV_AXES)


@flax.struct.dataclass
class SharedPrefixLayerCache:
    """One layer's cache for `samples` continuations of each prompt, the prompt's keys/values stored once.

    `prefix_k`/`prefix_v` `[prompts, kv_heads, prefix_len, head_dim]` hold the prompts (cache slots
    `[0, prefix_len)`); `k`/`v` `[prompts, kv_heads, samples, max_len - prefix_len, head_dim]` hold each
    row's own later tokens, row `b * samples + s` of the batch being `[b, :, s]`. A decode step then reads each
    prompt's keys once for all its samples instead of once per row (on the sampler benchmark's 256-token
    prompts x 8 samples + 128 new tokens, 2.4x fewer cache bytes per step by count). The own buffers keep the
    grouped shape so that attention reads what the step wrote as is: a reshape between the two made XLA
    redo the write out of place into a fresh copy of the buffer on every step.
    """

    prefix_k: jax.Array
    prefix_v: jax.Array
    k: jax.Array
    v: jax.Array

    @property
    def prefix_len(self) -> int:
        return self.prefix_k.shape[2]

    def write(self, k: jax.Array, v: jax.Array, index: jax.Array) -> SharedPrefixLayerCache:
        """Store new keys/values `[rows, L, kv_heads, head_dim]` at slots `[index, index + L)` (after the prefix)."""
        own = index - self.prefix_len
        return self.replace(
            k=constrain(_write_grouped(self.k, k, own), GROUPED_KV_AXES),
            v=constrain(_write_grouped(self.v, v, own), GROUPED_KV_AXES),
        )

    def logical_axes(self) -> SharedPrefixLayerCache:
        return SharedPrefixLayerCache(KV_AXES, KV_AXES, GROUPED_KV_AXES, GROUPED_KV_AXES)


AnyLayerCache = LayerCache | SharedPrefixLayerCache  # what one attention layer reads and writes


@flax.struct.dataclass
class Cache:
    """Per-layer keys/values, which slots hold real tokens, and the next write slot (shared by the batch).

    A decoder call with a cache writes its L new tokens at slots `[index, index + L)`, marks them valid in
    `key_mask` where their segment id is nonzero, and returns a cache whose `index` has advanced by L.
    """

    layers: tuple[AnyLayerCache, ...]
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
        return Cache(tuple(c.logical_axes() for c in self.layers), KEY_MASK_AXES, ())

    def shardings(self, mesh: jax.sharding.Mesh, rules: partitioning.LogicalRules | None = None) -> Cache:
        """Same structure with each array replaced by its NamedSharding on `mesh` (batch-sharded by default).

        Use as `jax.device_put(cache, cache.shardings(mesh))` or as jit in/out shardings.
        """

        def one(names: tuple[str, ...], x: jax.Array) -> jax.sharding.NamedSharding:
            return partitioning.sharding_for(names, x.shape, mesh, rules)

        def is_names(node) -> bool:
            return isinstance(node, tuple) and all(n is None or isinstance(n, str) for n in node)

        return jax.tree.map(one, self.logical_axes(), self, is_leaf=is_names)


def share_prefix(cache: Cache, samples: int, new_tokens: int) -> Cache:
    """A cache of `samples` rows per row of the prompt cache `cache`, with room for `new_tokens` more each.

    All of `cache`'s slots become the shared prefix (unfilled ones stay masked out); row `b * samples + s`
    continues row `b`, and the next write goes to slot `cache.max_len`.
    """
    batch, prefix_len = cache.key_mask.shape
    layers = []
    for c in cache.layers:
        rows, heads, _, dim = c.k.shape
        own = jnp.zeros((rows, heads, samples, new_tokens, dim), c.k.dtype)
        layers.append(SharedPrefixLayerCache(c.k, c.v, own, own))
    own_mask = jnp.zeros((batch * samples, new_tokens), jnp.bool_)
    key_mask = jnp.concatenate([jnp.repeat(cache.key_mask, samples, axis=0), own_mask], axis=1)
    return Cache(tuple(layers), key_mask, jnp.asarray(prefix_len, jnp.int32))


def write(buffer: jax.Array, new: jax.Array, index: jax.Array) -> jax.Array:
    """Write `new` `[B, L, ...]` into `buffer` `[B, max_len, ...]` at slot `index` along axis 1."""
    starts = (0, index) + (0,) * (buffer.ndim - 2)
    return jax.lax.dynamic_update_slice(buffer, new.astype(buffer.dtype), starts)


def write_kv(buffer: jax.Array, new: jax.Array, index: jax.Array) -> jax.Array:
    """Write keys or values `new` `[B, L, H, D]` into `buffer` `[B, H, max_len, D]` at slot `index`."""
    new = jnp.swapaxes(new, 1, 2).astype(buffer.dtype)
    return jax.lax.dynamic_update_slice(buffer, new, (0, 0, index, 0))


def _write_grouped(buffer: jax.Array, new: jax.Array, index: jax.Array) -> jax.Array:
    """Write `new` `[B * S, L, H, D]` into `buffer` `[B, H, S, max_len, D]` at slot `index`."""
    b, _, s, _, _ = buffer.shape
    new = jnp.transpose(new.reshape(b, s, *new.shape[1:]), (0, 3, 1, 2, 4)).astype(buffer.dtype)
    return jax.lax.dynamic_update_slice(buffer, new, (0, 0, 0, index, 0))


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
