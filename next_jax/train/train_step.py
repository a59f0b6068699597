"""The jitted training step: loss on target tokens, microbatch gradient accumulation, optimizer update.

Batches use the seqio `DecoderFeatureConverter` layout: `decoder_input_tokens`, `decoder_target_tokens`,
`decoder_loss_weights`, and for packed data `decoder_segment_ids` and `decoder_positions`, each
`[batch, length]`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from next_jax.train.loss import LossSums, add_sums, cross_entropy_sums, zero_sums

BATCH_FEATURES = (
    "decoder_input_tokens",
    "decoder_target_tokens",
    "decoder_loss_weights",
    "decoder_segment_ids",
    "decoder_positions",
)

Batch = Mapping[str, jax.Array]


@flax.struct.dataclass
class TrainState:
    """Everything a step updates: step counter, float32 master parameters (a pure dict), optimizer state."""

    step: jax.Array
    params: dict
    opt_state: optax.OptState


def make_loss_fn(
    graphdef: nnx.GraphDef, params_template: nnx.State, rest: nnx.State, z_loss: float
) -> Callable:
    """`loss_fn(params, batch, scale=1.0) -> (scale * loss_sum, LossSums)` running the decoder described by
    `graphdef`.

    `params_template` gives the nnx State structure the pure-dict `params` are poured into; `rest` holds
    the model's non-parameter state, which training does not change. `scale` (the train step passes
    1 / total target weight) normalises the differentiated loss, so gradients come out already divided.
    """

    def loss_fn(params: dict, batch: Batch, scale: jax.Array | float = 1.0) -> tuple[jax.Array, LossSums]:
        state = nnx.State(params_template)  # shallow copy: replace_by_pure_dict mutates in place
        nnx.replace_by_pure_dict(state, params)
        model = nnx.merge(graphdef, state, rest)
        logits = model(
            batch["decoder_input_tokens"],
            positions=batch.get("decoder_positions"),
            segment_ids=batch.get("decoder_segment_ids"),
        )
        sums = cross_entropy_sums(
            logits, batch["decoder_target_tokens"], batch["decoder_loss_weights"], z_loss=z_loss
        )
        return sums.loss * scale, sums

    return loss_fn


def split_microbatches(batch: Batch, num_microbatches: int) -> dict[str, jax.Array]:
    """`[B, ...]` -> `[M, B/M, ...]` with microbatch m = rows m, m+M, m+2M, ...

    Strided rather than contiguous rows, so that when the batch is sharded over devices in contiguous
    blocks every microbatch still has rows on every device (no resharding between microbatches).
    """

    def split(x: jax.Array) -> jax.Array:
        if x.shape[0] % num_microbatches:
            raise ValueError(f"batch {x.shape[0]} not divisible into {num_microbatches} microbatches")
        x = x.reshape(x.shape[0] // num_microbatches, num_microbatches, *x.shape[1:])
        return jnp.swapaxes(x, 0, 1)

    return {k: split(v) for k, v in batch.items()}


def make_train_step(
    loss_fn: Callable,
    optimizer: optax.GradientTransformation,
    *,
    num_microbatches: int = 1,
    learning_rate: optax.Schedule | float | None = None,
) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]:
    """A pure `train_step(state, batch) -> (state, metrics)` (jit it with shardings; see `Trainer`).

    The differentiated loss is divided by the whole batch's target-token weight up front (it is known from
    `decoder_loss_weights` before the forward pass), so microbatch gradients summed in float32 equal the
    whole-batch gradient (up to float summation order), and no separate pass divides the gradients: XLA:CPU
    would fuse that division into the weight-gradient matmuls, which slows its matmul library down.
    """
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, jax.Array]]:
        denom = jnp.maximum(jnp.sum(batch["decoder_loss_weights"].astype(jnp.float32)), 1.0)
        if num_microbatches == 1:
            (_, sums), grads = grad_fn(state.params, batch, 1.0 / denom)
        else:
            micro = split_microbatches(batch, num_microbatches)
            zero_grads = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), state.params)

            def accumulate(carry, mb):
                grads_acc, sums_acc = carry
                (_, sums), grads = grad_fn(state.params, mb, 1.0 / denom)
                grads_acc = jax.tree.map(lambda a, g: a + g.astype(jnp.float32), grads_acc, grads)
                return (grads_acc, add_sums(sums_acc, sums)), None

            (grads, sums), _ = jax.lax.scan(accumulate, (zero_grads, zero_sums()), micro)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            "loss": sums.loss / denom,
            "cross_entropy": sums.cross_entropy / denom,
            "z_loss": sums.z_loss / denom,
            "accuracy": sums.correct / denom,
            "target_tokens": sums.weight,
            "grad_norm": optax.global_norm(grads),
            "param_norm": optax.global_norm(params),
        }
        if learning_rate is not None:
            metrics["learning_rate"] = (
                jnp.asarray(learning_rate(state.step), jnp.float32)
                if callable(learning_rate)
                else jnp.asarray(learning_rate, jnp.float32)
            )
        return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

    return train_step


def make_eval_step(loss_fn: Callable) -> Callable[[dict, Batch], dict[str, jax.Array]]:
    """`eval_step(params, batch) -> metrics` (loss and accuracy on target tokens, no update)."""

    def eval_step(params: dict, batch: Batch) -> dict[str, Any]:
        _, sums = loss_fn(params, batch)
        denom = jnp.maximum(sums.weight, 1.0)
        return {
            "loss": sums.loss / denom,
            "cross_entropy": sums.cross_entropy / denom,
            "accuracy": sums.correct / denom,
            "target_tokens": sums.weight,
        }

    return eval_step
