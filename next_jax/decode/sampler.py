"""`Sampler`: jitted KV-cache decoding of `num_samples` completions per prompt.

Each prompt is prefilled once; its cache is then shared by its `num_samples` rows (stored once, or
repeated along the batch with `share_prompt_cache=False`) and all rows decode together in one
`lax.while_loop` that stops when every row has produced EOS or `max_new_tokens` tokens. Prompts are left-padded to a bucketed length so that all rows write the same
cache slot each step and few shapes are compiled.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import gin
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from next_jax.decode import batching
from next_jax.decode.sampling import choose_tokens
from next_jax.models import cache as cache_lib
from next_jax.models import partitioning
from next_jax.models.mesh import create_mesh


@dataclasses.dataclass(frozen=True)
class SampleOutput:
    """Completions for B prompts x S samples, T = max_new_tokens.

    `tokens` int32 `[B, S, T]` (after EOS: `pad_id`), `logprobs` float32 `[B, S, T]` (model log-prob of
    each generated token, 0 after EOS), `lengths` int32 `[B, S]` (generated tokens including the EOS).
    """

    tokens: np.ndarray
    logprobs: np.ndarray
    lengths: np.ndarray

    def completions(self) -> list[list[list[int]]]:
        """Token lists per prompt and sample, cut at their lengths (EOS included)."""
        return [
            [self.tokens[b, s, : self.lengths[b, s]].tolist() for s in range(self.tokens.shape[1])]
            for b in range(self.tokens.shape[0])
        ]

    def total_logprobs(self) -> np.ndarray:
        """`[B, S]` sum of log-probs of each completion."""
        return self.logprobs.sum(axis=-1)


def _repeat_rows(tree, times: int):
    """Repeat every batch-major array of a cache `times` times along axis 0 (row b -> rows b*S .. b*S+S-1)."""
    return jax.tree.map(lambda x: jnp.repeat(x, times, axis=0) if x.ndim else x, tree)


def _generate(
    graphdef: nnx.GraphDef,
    state: nnx.State,
    tokens: jax.Array,
    mask: jax.Array,
    prompt_ids: jax.Array,
    seed: jax.Array,
    temperature: jax.Array,
    top_p: jax.Array,
    *,
    num_samples: int,
    max_new_tokens: int,
    top_k: int,
    use_top_p: bool,
    greedy: bool,
    eos_ids: tuple[int, ...],
    pad_id: int,
    cache_dtype: jnp.dtype,
    share_prompt_cache: bool,
    row_sharding: NamedSharding | None,
):
    model = nnx.merge(graphdef, state)
    batch, prompt_len = tokens.shape
    positions = jnp.clip(jnp.cumsum(mask, axis=1) - 1, 0).astype(jnp.int32)
    cache_len = prompt_len if share_prompt_cache else prompt_len + max_new_tokens
    cache = model.init_cache(batch, cache_len, dtype=cache_dtype)
    if prompt_len > 1:
        # Logits of all but the last prompt token are never read, so XLA drops their output projection.
        _, cache = model(tokens[:, :-1], positions=positions[:, :-1], segment_ids=mask[:, :-1], cache=cache)
    logits, cache = model(tokens[:, -1:], positions=positions[:, -1:], segment_ids=mask[:, -1:], cache=cache)
    logits = logits[:, 0]

    # Share the prompt: sample s of prompt b is row b * num_samples + s.
    rows = batch * num_samples
    if share_prompt_cache:
        cache = cache_lib.share_prefix(cache, num_samples, max_new_tokens)
    else:
        cache = _repeat_rows(cache, num_samples)
    logits = jnp.repeat(logits, num_samples, axis=0)
    next_pos = jnp.repeat(positions[:, -1] + 1, num_samples)
    if row_sharding is not None:
        cache = jax.tree.map(
            lambda x: jax.lax.with_sharding_constraint(x, _cache_sharding(x, row_sharding)), cache
        )
        logits = jax.lax.with_sharding_constraint(logits, row_sharding)

    # One key per (prompt, sample), independent of batch composition and padding; folded with the step.
    base = jax.random.key(seed)
    sample_ids = jnp.tile(jnp.arange(num_samples), batch)
    row_keys = jax.vmap(lambda p, s: jax.random.fold_in(jax.random.fold_in(base, p), s))(
        jnp.repeat(prompt_ids, num_samples), sample_ids
    )
    eos = jnp.asarray(eos_ids, jnp.int32)

    def cond(carry):
        t, _, _, _, done, *_ = carry
        return jnp.logical_and(t < max_new_tokens, jnp.logical_not(jnp.all(done)))

    def body(carry):
        t, cache, logits, pos, done, lengths, out_tokens, out_logprobs = carry
        keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(row_keys, t)
        tok, logprob = choose_tokens(
            keys,
            logits,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p if use_top_p else None,
            greedy=greedy,
        )
        tok = jnp.where(done, pad_id, tok)
        logprob = jnp.where(done, 0.0, logprob)
        out_tokens = jax.lax.dynamic_update_slice(out_tokens, tok[:, None], (0, t))
        out_logprobs = jax.lax.dynamic_update_slice(out_logprobs, logprob[:, None], (0, t))
        lengths = jnp.where(done, lengths, t + 1)
        done = jnp.logical_or(done, jnp.isin(tok, eos))
        step_logits, cache = model(tok[:, None], positions=pos[:, None], cache=cache)
        return t + 1, cache, step_logits[:, 0], pos + 1, done, lengths, out_tokens, out_logprobs

    init = (
        jnp.zeros((), jnp.int32),
        cache,
        logits,
        next_pos,
        jnp.zeros((rows,), jnp.bool_),
        jnp.zeros((rows,), jnp.int32),
        jnp.full((rows, max_new_tokens), pad_id, jnp.int32),
        jnp.zeros((rows, max_new_tokens), jnp.float32),
    )
    *_, lengths, out_tokens, out_logprobs = jax.lax.while_loop(cond, body, init)
    shape = (batch, num_samples, max_new_tokens)
    return out_tokens.reshape(shape), out_logprobs.reshape(shape), lengths.reshape(batch, num_samples)


def _cast_like(new: dict, old: dict) -> dict:
    """`new`'s leaves cast to the dtypes of the matching leaves of `old` (keys of `old` missing from `new`,
    such as non-parameter state, keep their values)."""
    if isinstance(old, dict):
        return {k: _cast_like(new[k], v) if k in new else v for k, v in old.items()}
    return jnp.asarray(new, old.dtype)


def _cache_sharding(x: jax.Array, row_sharding: NamedSharding) -> NamedSharding:
    """Cache arrays split over rows like the batch; the scalar write index replicated."""
    if x.ndim == 0:
        return NamedSharding(row_sharding.mesh, PartitionSpec())
    return NamedSharding(row_sharding.mesh, PartitionSpec(row_sharding.spec[0], *([None] * (x.ndim - 1))))


@gin.configurable(module="next_jax.decode")
def sampling_params(
    num_samples: int = 8,
    max_new_tokens: int = 512,
    temperature: float = 0.8,
    top_k: int = 0,
    top_p: float = 0.95,
) -> dict:
    """The keyword arguments of `Sampler.sample` as bound in gin (`gin/runs/sample.gin`)."""
    return dict(
        num_samples=num_samples,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
    )


@gin.configurable(module="next_jax.decode")
class Sampler:
    """Samples completions from an nnx `Decoder` on a mesh (default: all devices, data parallel).

    `eos_id` may be one id or several. `length_buckets` are the padded prompt lengths that get compiled.
    `share_prompt_cache` keeps one copy of each prompt's keys/values for all its samples (see
    `cache.SharedPrefixLayerCache`); False repeats the prompt cache into every sample's row instead.
    The model's parameters are placed on `mesh` by their logical axes, so a sharded model stays sharded.
    """

    def __init__(
        self,
        model: nnx.Module,
        *,
        eos_id: int | Sequence[int],
        pad_id: int = 0,
        mesh: jax.sharding.Mesh | None = None,
        length_buckets: Sequence[int] = batching.DEFAULT_LENGTH_BUCKETS,
        cache_dtype: jnp.dtype | None = None,
        share_prompt_cache: bool = True,
    ):
        self.mesh = mesh if mesh is not None else create_mesh()
        self.eos_ids = (int(eos_id),) if np.isscalar(eos_id) else tuple(int(e) for e in eos_id)
        self.pad_id = int(pad_id)
        self.length_buckets = tuple(length_buckets)
        self.cache_dtype = jnp.dtype(cache_dtype or getattr(model, "dtype", jnp.float32))
        self.share_prompt_cache = bool(share_prompt_cache)
        self._graphdef, state = nnx.split(model)
        self._state = jax.device_put(state, partitioning.named_shardings(state, self.mesh))
        self._state_shardings = jax.tree.map(lambda x: x.sharding, self._state)
        self._data_parallel = self.mesh.shape.get("data", 1) * self.mesh.shape.get("fsdp", 1)
        self._row_sharding = partitioning.sharding_for(("batch",), (self._data_parallel,), self.mesh)
        self._compiled: dict[tuple, object] = {}

    def set_params(self, params: dict) -> None:
        """Sample from new parameters (a pure dict shaped like the model's `nnx.Param` state, e.g. a
        `Trainer`'s `state.params`), placed on this sampler's shardings device to device and cast to its
        dtypes. The compiled sampling functions take parameters as arguments, so nothing recompiles."""
        state = jax.tree.map(lambda x: x, self._state)  # a new tree; the old arrays stay valid until replaced
        nnx.replace_by_pure_dict(state, _cast_like(params, nnx.to_pure_dict(state)))
        # Copied, so the caller may donate or delete its own buffers (a trainer's next step does).
        self._state = jax.tree.map(jnp.copy, jax.device_put(state, self._state_shardings))

    def params(self) -> dict:
        """The sampling parameters as a pure dict (device arrays)."""
        return nnx.to_pure_dict(self._state)

    def _batch_sharding(self, ndim: int) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec(self._row_sharding.spec[0], *([None] * (ndim - 1))))

    def _compile(self, key: tuple):
        if key not in self._compiled:
            num_samples, max_new_tokens, top_k, use_top_p, greedy = key
            fn = functools.partial(
                _generate,
                self._graphdef,
                num_samples=num_samples,
                max_new_tokens=max_new_tokens,
                top_k=top_k,
                use_top_p=use_top_p,
                greedy=greedy,
                eos_ids=self.eos_ids,
                pad_id=self.pad_id,
                cache_dtype=self.cache_dtype,
                share_prompt_cache=self.share_prompt_cache,
                row_sharding=self._row_sharding,
            )
            replicated = NamedSharding(self.mesh, PartitionSpec())
            rows2, rows1 = self._batch_sharding(2), self._batch_sharding(1)
            self._compiled[key] = jax.jit(
                fn,
                in_shardings=(self._state_shardings, rows2, rows2, rows1, replicated, replicated, replicated),
                out_shardings=(self._batch_sharding(3), self._batch_sharding(3), rows2),
            )
        return self._compiled[key]

    def sample(
        self,
        prompts: Sequence[Sequence[int]] | np.ndarray,
        *,
        num_samples: int = 1,
        max_new_tokens: int = 128,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
        prompt_ids: Sequence[int] | None = None,
    ) -> SampleOutput:
        """`num_samples` completions of each prompt (token id lists, any lengths).

        temperature 0 is greedy. Results are reproducible for a seed and do not depend on how prompts are
        padded: the random stream of sample s of prompt i depends only on (seed, prompt_ids[i], s).
        `prompt_ids` (default: positions 0..B-1) are any int32 values; giving each prompt a stable id (a hash
        of its example) makes what is sampled independent of batching and chunking.
        """
        prompts = [np.asarray(p, np.int32).reshape(-1) for p in prompts]
        if not prompts:
            raise ValueError("no prompts")
        if prompt_ids is not None and len(prompt_ids) != len(prompts):
            raise ValueError(f"{len(prompt_ids)} prompt_ids for {len(prompts)} prompts")
        length = batching.bucket(max(p.size for p in prompts), self.length_buckets)
        batch = batching.batch_bucket(len(prompts), self._data_parallel)
        tokens, mask = batching.left_pad(prompts, length, batch, self.pad_id)
        greedy = temperature <= 0.0
        key = (
            int(num_samples),
            int(max_new_tokens),
            0 if greedy else int(top_k),
            (not greedy) and top_p < 1.0,
            greedy,
        )
        fn = self._compile(key)
        ids = np.arange(batch, dtype=np.int32)
        if prompt_ids is not None:
            ids[: len(prompts)] = np.asarray(prompt_ids, np.int64).astype(np.int32)
        with partitioning.partitioned(self.mesh):
            out = fn(
                self._state,
                tokens,
                mask,
                ids,
                np.asarray(seed, np.uint32),
                np.asarray(temperature, np.float32),
                np.asarray(top_p, np.float32),
            )
        out_tokens, out_logprobs, lengths = (np.asarray(x)[: len(prompts)] for x in jax.device_get(out))
        return SampleOutput(tokens=out_tokens, logprobs=out_logprobs, lengths=lengths)
