"""`Decoder`: the decoder-only transformer used for both sampling and fine-tuning."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from next_jax.models import cache as cache_lib
from next_jax.models.attention import Attention
from next_jax.models.cache import Cache
from next_jax.models.config import DecoderConfig
from next_jax.models.layers import MLP, Embedder, KeyStream, Norm, dense, fan_in_init, param
from next_jax.models.partitioning import constrain

_RESIDUAL = ("batch", "length", "embed")


class Block(nnx.Module):
    """Pre-norm transformer layer; `parallel_block` runs attention and MLP side by side from one norm (PaLM)."""

    def __init__(self, config: DecoderConfig, *, keys: KeyStream, dtype: jnp.dtype, param_dtype: jnp.dtype):
        norm = dict(dim=config.embed_dim, kind=config.norm, eps=config.norm_eps, param_dtype=param_dtype)
        self.attn_norm = Norm(**norm)
        self.attn = Attention(config, keys=keys, dtype=dtype, param_dtype=param_dtype)
        self.mlp_norm = None if config.parallel_block else Norm(**norm)
        self.mlp = MLP(config, keys=keys, dtype=dtype, param_dtype=param_dtype)

    def __call__(
        self,
        x: jax.Array,
        positions: jax.Array,
        mask: jax.Array,
        layer_cache: cache_lib.AnyLayerCache | None,
        index: jax.Array | None,
        *,
        causal: bool = False,
    ) -> tuple[jax.Array, cache_lib.AnyLayerCache | None]:
        h = self.attn_norm(x)
        attn, layer_cache = self.attn(h, positions, mask, layer_cache, index, causal=causal)
        if self.mlp_norm is None:
            x = x + attn + self.mlp(h)
        else:
            x = x + attn
            x = x + self.mlp(self.mlp_norm(x))
        return constrain(x, _RESIDUAL), layer_cache


def remat_policy(config: DecoderConfig) -> Callable:
    """The `jax.checkpoint` policy named by `config.remat_policy`."""
    return getattr(jax.checkpoint_policies, config.remat_policy)


def _layer_forward(*, causal: bool, remat: bool, policy: Callable | None = None) -> Callable:
    """`forward(block, x, positions, mask, layer_cache, index)`; with `remat`, activations inside the layer
    are recomputed in the backward pass (a closure, as nnx.remat takes positional arguments only)."""

    def forward(block: Block, x, positions, mask, layer_cache, index):
        return block(x, positions, mask, layer_cache, index, causal=causal)

    return nnx.remat(forward, policy=policy) if remat else forward


def stacked_blocks(
    config: DecoderConfig, keys: KeyStream, *, dtype: jnp.dtype, param_dtype: jnp.dtype
) -> Block:
    """One `Block` whose every parameter has a leading `layers` axis of size `num_layers` (logical name
    `layers`), initialised per layer from independent keys."""

    @nnx.vmap(in_axes=0, out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
    def make(key: jax.Array) -> Block:
        return Block(config, keys=KeyStream(key), dtype=dtype, param_dtype=param_dtype)

    return make(jax.random.split(keys(), config.num_layers))


class Decoder(nnx.Module):
    """Decoder-only LM covering PaLM-style, Llama, Qwen2 and Gemma families (see `DecoderConfig`)."""

    def __init__(
        self,
        config: DecoderConfig,
        *,
        rngs: nnx.Rngs,
        dtype: jnp.dtype | None = None,
        param_dtype: jnp.dtype | None = None,
    ):
        dtype = config.jnp_dtype if dtype is None else jnp.dtype(dtype)
        param_dtype = config.jnp_param_dtype if param_dtype is None else jnp.dtype(param_dtype)
        # the config records the dtypes actually used, so `model.config` rebuilds this very model
        config = config.replace(dtype=dtype.name, param_dtype=param_dtype.name)
        self.config = config
        self.dtype = dtype
        keys = KeyStream(rngs.params())
        self.embedder = Embedder(config, keys=keys, dtype=dtype, param_dtype=param_dtype)
        if config.scan_layers:
            self.layers = stacked_blocks(config, keys, dtype=dtype, param_dtype=param_dtype)
        else:
            self.layers = nnx.List(
                [
                    Block(config, keys=keys, dtype=dtype, param_dtype=param_dtype)
                    for _ in range(config.num_layers)
                ]
            )
        self.final_norm = Norm(config.embed_dim, config.norm, config.norm_eps, param_dtype=param_dtype)
        self.lm_head = (
            None
            if config.tie_embeddings
            else param(
                keys,
                fan_in_init(0, 1),
                (config.embed_dim, config.vocab_size),
                ("embed", "vocab"),
                param_dtype,
            )
        )

    def _blocks(self) -> list[Block]:
        """The layers one by one (with `scan_layers`, views of layer i of the stacked parameters)."""
        if not self.config.scan_layers:
            return list(self.layers)
        graphdef, state = nnx.split(self.layers)
        return [
            nnx.merge(graphdef, jax.tree.map(lambda a, i=i: a[i], state))
            for i in range(self.config.num_layers)
        ]

    def _scan_layers(
        self, x: jax.Array, positions: jax.Array, masks: dict, *, causal: bool, remat: bool
    ) -> jax.Array:
        """All layers as one `lax.scan` over the stacked parameters (no cache)."""
        graphdef, state = nnx.split(self.layers)
        windows = sorted(masks)
        # Layers with different sliding windows pick their mask by index from a stack of the distinct ones.
        window_index = jnp.asarray([windows.index(self.config.window(i)) for i in range(self.config.num_layers)])
        stacked_masks = jnp.stack([masks[w] for w in windows]) if len(windows) > 1 else None

        def body(h: jax.Array, layer: tuple) -> tuple[jax.Array, None]:
            layer_state, w = layer
            mask = masks[windows[0]] if stacked_masks is None else stacked_masks[w]
            block = nnx.merge(graphdef, layer_state)
            h, _ = block(h, positions, mask, None, None, causal=causal)
            return h, None

        if remat:
            body = jax.checkpoint(body, policy=remat_policy(self.config), prevent_cse=False)
        x, _ = jax.lax.scan(body, x, (state, window_index))
        return x

    def init_cache(self, batch: int, max_len: int, dtype: jnp.dtype = jnp.float32) -> Cache:
        """An empty KV cache for `batch` rows of up to `max_len` tokens."""
        c = self.config
        return Cache.zeros(c.num_layers, batch, max_len, c.num_kv_heads, c.head_dim, dtype)

    def _masks(self, tokens, segment_ids, prefix_mask, cache, key_mask):
        """One attention mask per distinct layer window (most models: one mask for all layers)."""
        batch, length = tokens.shape
        masks = {}
        for window in {self.config.window(i) for i in range(self.config.num_layers)}:
            if cache is None:
                masks[window] = cache_lib.full_mask(length, segment_ids, prefix_mask, window, batch)
            else:
                masks[window] = cache_lib.cached_mask(cache.index, length, key_mask, prefix_mask, window)
        return masks

    def logits(self, x: jax.Array) -> jax.Array:
        """Final norm and output projection of hidden states `[B, L, embed]` -> float32 `[B, L, vocab]`."""
        x = self.final_norm(x)
        if self.lm_head is None:
            logits = self.embedder.attend(x)
            if self.config.scale_tied_logits:
                logits = logits / jnp.sqrt(jnp.float32(self.config.embed_dim))
        else:
            kernel = self.lm_head.get_value().astype(self.dtype)
            logits = dense(x, kernel, out_dtype=jnp.float32)
        return constrain(logits, ("batch", "length", "vocab"))

    def __call__(
        self,
        tokens: jax.Array,
        *,
        positions: jax.Array | None = None,
        segment_ids: jax.Array | None = None,
        prefix_mask: jax.Array | None = None,
        cache: Cache | None = None,
    ) -> jax.Array | tuple[jax.Array, Cache]:
        """Logits for `tokens` `[B, L]`; with `cache`, also the updated cache (prefill or decode step).

        `positions` `[B, L]` feed RoPE (default: 0..L-1, or `cache.index + 0..L-1` with a cache).
        `segment_ids` `[B, L]` (0 = padding) restrict attention to equal nonzero segments (packing); with a
        cache they only mark which new slots are valid keys. `prefix_mask` `[B, L]` lets prompt tokens
        attend to each other bidirectionally (prefix LM; seqio's `decoder_causal_attention` fits as is).
        With a cache the call writes slots `[cache.index, cache.index + L)`, which must fit in the cache
        (`dynamic_update_slice` would otherwise clamp the write position).
        """
        batch, length = tokens.shape
        if positions is None:
            start = 0 if cache is None else cache.index
            positions = jnp.broadcast_to(start + jnp.arange(length, dtype=jnp.int32), (batch, length))
        if prefix_mask is not None:
            prefix_mask = prefix_mask.astype(jnp.bool_)
        key_mask = None
        if cache is not None:
            valid = jnp.ones((batch, length), jnp.bool_) if segment_ids is None else segment_ids != 0
            key_mask = cache_lib.write(cache.key_mask, valid, cache.index)
        masks = self._masks(tokens, segment_ids, prefix_mask, cache, key_mask)

        x = constrain(self.embedder.encode(tokens), _RESIDUAL)
        # Without a prefix-LM mask or a cache, no query sees a later key: attention may skip future blocks.
        causal = prefix_mask is None and cache is None
        remat = self.config.remat and cache is None
        if self.config.scan_layers and cache is None:
            x = self._scan_layers(x, positions, masks, causal=causal, remat=remat)
            new_layers = []
        else:
            forward = _layer_forward(causal=causal, remat=remat, policy=remat_policy(self.config))
            new_layers = []
            for i, block in enumerate(self._blocks()):
                layer_cache = None if cache is None else cache.layers[i]
                index = None if cache is None else cache.index
                x, layer_cache = forward(block, x, positions, masks[self.config.window(i)], layer_cache, index)
                new_layers.append(layer_cache)
        logits = self.logits(x)
        if cache is None:
            return logits
        return logits, Cache(tuple(new_layers), key_mask, cache.index + length)
