"""Token-level cross-entropy on target tokens, with optional z-loss (T5X convention).

Functions return *sums* over the batch (not means) so that gradient accumulation over microbatches can add
them up and divide once by the total target-token weight.

The per-token loss has a hand-written VJP (as T5X's `cross_entropy_with_logits`): the gradient
`softmax - one_hot` is one elementwise pass over the `[tokens, vocab]` logits, where autodiff of
`take_along_axis` would scatter into a zero tensor of that size, which is slow on CPU.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp


class LossSums(NamedTuple):
    """Per-batch sums; divide by `weight` to get means."""

    loss: jax.Array  # weighted cross-entropy + z-loss, the quantity that is differentiated
    cross_entropy: jax.Array  # weighted cross-entropy alone
    z_loss: jax.Array  # weighted z-loss term alone (already multiplied by its coefficient)
    correct: jax.Array  # weighted count of argmax == target
    weight: jax.Array  # sum of decoder_loss_weights


def _forward(logits: jax.Array, targets: jax.Array, z_loss: float):
    max_logit = jnp.max(logits, axis=-1)
    shifted = logits - max_logit[..., None]
    log_z = jnp.log(jnp.sum(jnp.exp(shifted), axis=-1)) + max_logit
    one_hot = targets[..., None] == jnp.arange(logits.shape[-1], dtype=targets.dtype)
    target_logit = jnp.sum(jnp.where(one_hot, logits, 0.0), axis=-1)
    xent = log_z - target_logit
    z_term = z_loss * jnp.square(log_z)
    # The target is the argmax iff its logit reaches the max (ties count as correct).
    correct = (target_logit >= max_logit).astype(jnp.float32)
    return (xent, z_term, correct), log_z


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def token_losses(logits: jax.Array, targets: jax.Array, z_loss: float):
    """Per-token `(cross_entropy, z_loss_term, correct)` for float32 `logits` [..., V] and int `targets`."""
    return _forward(logits, targets, z_loss)[0]


def _token_losses_fwd(logits, targets, z_loss):
    outputs, log_z = _forward(logits, targets, z_loss)
    return outputs, (logits, targets, log_z)


def _token_losses_bwd(z_loss, residuals, cotangents):
    logits, targets, log_z = residuals
    g_xent, g_z, _ = cotangents  # `correct` is not differentiable
    probs = jnp.exp(logits - log_z[..., None])
    one_hot = targets[..., None] == jnp.arange(logits.shape[-1], dtype=targets.dtype)
    # d xent = softmax - one_hot; d (z log_z^2) = 2 z log_z softmax.
    scale = (g_xent + g_z * 2.0 * z_loss * log_z)[..., None]
    grad = probs * scale - jnp.where(one_hot, g_xent[..., None], 0.0)
    return grad, None


token_losses.defvjp(_token_losses_fwd, _token_losses_bwd)


def cross_entropy_sums(
    logits: jax.Array, targets: jax.Array, weights: jax.Array, *, z_loss: float = 0.0
) -> LossSums:
    """Weighted cross-entropy of `logits` [..., V] against int `targets` [...].

    `weights` (decoder_loss_weights) is 0 on prompt and padding positions, so only target tokens count.
    z-loss adds `z_loss * log(Z)^2` per token, which keeps the softmax normaliser near 1 (PaLM, T5X).
    The computation runs in float32 whatever the logits' dtype: bf16 log-sum-exp loses too much precision.
    """
    weights = weights.astype(jnp.float32)
    xent, z_term, correct = token_losses(logits.astype(jnp.float32), targets.astype(jnp.int32), float(z_loss))
    xent_sum = jnp.sum(xent * weights)
    z_sum = jnp.sum(z_term * weights)
    return LossSums(
        loss=xent_sum + z_sum,
        cross_entropy=xent_sum,
        z_loss=z_sum,
        correct=jnp.sum(correct * weights),
        weight=jnp.sum(weights),
    )


def add_sums(a: LossSums, b: LossSums) -> LossSums:
    """Element-wise sum of two `LossSums` (microbatch accumulation)."""
    return LossSums(*(x + y for x, y in zip(a, b, strict=True)))


def zero_sums() -> LossSums:
    """A `LossSums` of float32 zeros, the accumulator's initial value."""
    z = jnp.zeros((), jnp.float32)
    return LossSums(z, z, z, z, z)
