"""Per-step token choice: temperature, top-k and top-p (nucleus) filtering, and log-probs.

All functions are pure and jit-friendly; `top_k` and whether top-p is active are static (they change
shapes or the traced program), while `temperature` and `top_p` may be traced scalars.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

NEG_INF = -1e30  # finite, so that softmax over a fully-masked row is uniform rather than NaN


def top_k_mask(logits: jax.Array, k: int) -> jax.Array:
    """Logits with everything outside the `k` largest per row set to NEG_INF (ties at the k-th value kept)."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = jax.lax.top_k(logits, k)[0][..., -1:]
    return jnp.where(logits < kth, NEG_INF, logits)


# Top-p over a large vocabulary first looks at this many most likely tokens: when they already hold probability
# p (nearly always, for a trained model), the nucleus is inside them and no full sort of the row is needed.
TOP_P_PREFIX = 256


def top_p_mask(logits: jax.Array, p: float | jax.Array, prefix: int = TOP_P_PREFIX) -> jax.Array:
    """Logits outside the smallest set of most likely tokens whose probability reaches `p`, set to NEG_INF.

    The most likely token always survives, so p -> 0 degenerates to greedy rather than to nothing. Rows of more
    than 2 * `prefix` tokens are decided from their `prefix` largest logits (`lax.top_k`) whenever every row's
    nucleus closes inside them (exactly: tokens past the prefix all have at least the prefix's mass before them);
    otherwise, and for short rows, from a full sort.
    """

    def full_sort() -> jax.Array:
        sorted_logits = jnp.sort(logits, axis=-1)[..., ::-1]
        return _nucleus_threshold(sorted_logits, jax.nn.softmax(sorted_logits, axis=-1), p)

    if logits.shape[-1] <= 2 * prefix:
        threshold = full_sort()
    else:
        head = jax.lax.top_k(logits, prefix)[0]
        probs = jnp.exp(head - jax.nn.logsumexp(logits, axis=-1, keepdims=True))
        inside = jnp.all(jnp.sum(probs, axis=-1) >= p)
        threshold = jax.lax.cond(inside, lambda: _nucleus_threshold(head, probs, p), full_sort)
    return jnp.where(logits < threshold, NEG_INF, logits)


def _nucleus_threshold(sorted_logits: jax.Array, probs: jax.Array, p: float | jax.Array) -> jax.Array:
    """The smallest kept logit, from logits sorted in descending order and their probabilities."""
    # Probability mass strictly before each sorted position; a token is kept while that is < p.
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    keep = (mass_before < p).at[..., 0].set(True)
    return jnp.min(jnp.where(keep, sorted_logits, jnp.inf), axis=-1, keepdims=True)


def filter_logits(
    logits: jax.Array, *, temperature: float | jax.Array = 1.0, top_k: int = 0, top_p: float | None = None
) -> jax.Array:
    """Temperature-scaled logits restricted by top-k then top-p (HF order: temperature, top-k, top-p)."""
    logits = logits.astype(jnp.float32) / jnp.maximum(temperature, 1e-6)
    logits = top_k_mask(logits, top_k)
    if top_p is not None:
        logits = top_p_mask(logits, top_p)
    return logits


def choose_tokens(
    keys: jax.Array,
    logits: jax.Array,
    *,
    temperature: float | jax.Array,
    top_k: int = 0,
    top_p: float | jax.Array | None = None,
    greedy: bool | jax.Array = False,
) -> tuple[jax.Array, jax.Array]:
    """One token per row of `logits` [N, V] and its log-prob under the model.

    `keys` holds one PRNG key per row, so a row's draw does not depend on which other rows share the batch.
    `greedy` (or temperature 0) takes the argmax. The returned log-prob is log softmax of the *raw* logits
    at the chosen token: the model's own score of the completion, independent of the sampling knobs.

    With `top_k`, sampling (and top-p) runs over the k candidates from `lax.top_k` only, which avoids
    sorting the whole vocabulary every step; the distribution is the same as masking the full row.
    """
    raw = logits.astype(jnp.float32)
    if 0 < top_k < raw.shape[-1]:
        cand_logits, cand_ids = jax.lax.top_k(raw, top_k)
        # The candidates hold the row maximum and, first among equals (top_k keeps ties in index order),
        # the argmax: two fewer passes over the vocabulary per step. Reduced over the k candidates rather
        # than sliced at [:, 0]: XLA folds such a slice into top_k's own and, no longer seeing the
        # sort-and-slice form of a top-k, sorts the whole vocabulary (a decode step became ~4x slower on CPU).
        best = jnp.argmax(cand_logits, axis=-1)
        argmax = jnp.take_along_axis(cand_ids, best[:, None], axis=-1)[:, 0]
        row_max = jnp.max(cand_logits, axis=-1)
        filtered = filter_logits(cand_logits, temperature=temperature, top_p=top_p)
        picks = jax.vmap(jax.random.categorical)(keys, filtered)
        sampled = jnp.take_along_axis(cand_ids, picks[:, None], axis=-1)[:, 0]
    else:
        argmax, row_max = jnp.argmax(raw, axis=-1), jnp.max(raw, axis=-1)
        filtered = filter_logits(raw, temperature=temperature, top_p=top_p)
        sampled = jax.vmap(jax.random.categorical)(keys, filtered)
    use_argmax = jnp.logical_or(greedy, temperature <= 0.0)
    tokens = jnp.where(use_argmax, argmax, sampled).astype(jnp.int32)
    log_z = _logsumexp(raw, row_max)
    token_log_probs = jnp.take_along_axis(raw, tokens[:, None], axis=-1)[:, 0] - log_z
    return tokens, token_log_probs


def _logsumexp(x: jax.Array, row_max: jax.Array) -> jax.Array:
    """`logsumexp(x, axis=-1)` of rows `[N, V]` whose maxima are known (`jax.nn.logsumexp`'s formula)."""
    shift = jnp.where(jnp.isfinite(row_max), row_max, 0.0)
    return jnp.log(jnp.sum(jnp.exp(x - shift[:, None]), axis=-1)) + shift
