"""Gin-configurable optax optimizers and learning-rate schedules.

`make_optimizer()` reads everything from gin, e.g.

    make_schedule.kind = 'warmup_cosine'
    make_schedule.peak_value = 1e-5
    make_optimizer.name = 'adamw'
"""

from __future__ import annotations

from collections.abc import Callable

import gin
import jax.numpy as jnp
import optax

SCHEDULE_KINDS = ("constant", "warmup_constant", "warmup_cosine", "warmup_linear", "rsqrt")
OPTIMIZER_NAMES = ("adafactor", "adamw")


@gin.configurable(module="next_jax.train")
def make_schedule(
    kind: str = "constant",
    peak_value: float = 1e-3,
    warmup_steps: int = 0,
    total_steps: int = 1000,
    end_value: float = 0.0,
) -> optax.Schedule:
    """A learning-rate schedule.

    kinds: `constant`; `warmup_constant` (linear warmup then flat); `warmup_cosine` and `warmup_linear`
    (linear warmup then decay to `end_value` at `total_steps`); `rsqrt` (T5X default: flat at `peak_value`
    for `warmup_steps`, then `peak_value * sqrt(warmup_steps / step)`).
    """
    if kind == "constant":
        return optax.constant_schedule(peak_value)
    if kind == "warmup_constant":
        return optax.warmup_constant_schedule(0.0, peak_value, max(warmup_steps, 1))
    if kind == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, peak_value, warmup_steps, max(total_steps, warmup_steps + 1), end_value
        )
    if kind == "warmup_linear":
        return optax.join_schedules(
            [
                optax.linear_schedule(0.0, peak_value, max(warmup_steps, 1)),
                optax.linear_schedule(peak_value, end_value, max(total_steps - warmup_steps, 1)),
            ],
            [warmup_steps],
        )
    if kind == "rsqrt":
        floor = float(max(warmup_steps, 1))

        def rsqrt(step):
            return peak_value * jnp.sqrt(floor / jnp.maximum(jnp.asarray(step, jnp.float32), floor))

        return rsqrt
    raise ValueError(f"unknown schedule kind {kind!r}; expected one of {SCHEDULE_KINDS}")


@gin.configurable(module="next_jax.train")
def make_optimizer(
    name: str = "adafactor",
    learning_rate: float | optax.Schedule | None = None,
    *,
    weight_decay: float = 0.0,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    adafactor_decay_rate: float = 0.8,
    adafactor_clipping_threshold: float | None = 1.0,
    adafactor_multiply_by_parameter_scale: bool = True,
    max_grad_norm: float | None = None,
) -> optax.GradientTransformation:
    """Adafactor (T5X defaults: factored second moments, decay 0.8, update clipping 1.0, parameter-scale
    step sizes) or AdamW, optionally preceded by global-norm gradient clipping.

    `learning_rate` defaults to `make_schedule()` (itself gin-configured).
    """
    lr: float | Callable = make_schedule() if learning_rate is None else learning_rate
    if name == "adafactor":
        opt = optax.adafactor(
            learning_rate=lr,
            decay_rate=adafactor_decay_rate,
            clipping_threshold=adafactor_clipping_threshold,
            multiply_by_parameter_scale=adafactor_multiply_by_parameter_scale,
            weight_decay_rate=weight_decay or None,
        )
    elif name == "adamw":
        opt = optax.adamw(learning_rate=lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
    else:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZER_NAMES}")
    if max_grad_norm is not None:
        opt = optax.chain(optax.clip_by_global_norm(max_grad_norm), opt)
    return opt


def learning_rate_at(schedule: float | optax.Schedule, step: int) -> float:
    """The learning rate a schedule (or constant) gives at `step`, for logging."""
    return float(schedule(step)) if callable(schedule) else float(schedule)
