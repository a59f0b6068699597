"""One way to build a train step from shapes alone: the abstract train state, its shardings and the step
lowered for a batch shape. `Trainer` places real weights into these shardings; `launch/compile_check.py`
compiles the same step for a TPU topology without any TPU."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from next_jax.models import partitioning
from next_jax.train import state_sharding
from next_jax.train.train_step import (
    BATCH_FEATURES,
    TrainState,
    make_eval_step,
    make_loss_fn,
    make_train_step,
)


@dataclasses.dataclass(frozen=True)
class StepParts:
    """What a train step is built from; every array here is a `jax.ShapeDtypeStruct`."""

    mesh: jax.sharding.Mesh
    graphdef: nnx.GraphDef
    params_template: nnx.State  # the params State's structure and metadata (ShapeDtypeStruct leaves)
    rest: nnx.State  # the model's non-parameter state
    abstract_state: TrainState  # float32 master parameters, optimizer state; carries the shardings
    state_shardings: TrainState
    step_fn: Callable
    eval_fn: Callable

    @property
    def param_shardings(self) -> dict:
        return self.state_shardings.params


def build_step(
    model: nnx.Module,
    mesh: jax.sharding.Mesh,
    optimizer: optax.GradientTransformation,
    *,
    z_loss: float,
    num_microbatches: int = 1,
    learning_rate: optax.Schedule | float | None = None,
) -> StepParts:
    """The step parts of `model` (real or abstract, e.g. `registry.abstract_model`) on `mesh`.

    Parameters become float32 master weights sharded by their logical axes; the optimizer state is
    sharded like the parameters it tracks. Nothing is allocated.
    """
    graphdef, params_state, rest = nnx.split(model, nnx.Param, ...)
    params_template = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params_state)
    param_shardings = state_sharding.param_shardings(params_state, mesh)
    abstract_params = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, jnp.float32), params_state.to_pure_dict()
    )
    replicated = NamedSharding(mesh, PartitionSpec())
    shardings = TrainState(
        step=replicated,
        params=param_shardings,
        opt_state=state_sharding.optimizer_state_shardings(optimizer, abstract_params, param_shardings, mesh),
    )
    abstract = TrainState(
        step=jax.ShapeDtypeStruct((), jnp.int32),
        params=abstract_params,
        opt_state=jax.eval_shape(optimizer.init, abstract_params),
    )
    abstract = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract, shardings
    )
    loss_fn = make_loss_fn(graphdef, params_template, rest, z_loss)
    step_fn = make_train_step(
        loss_fn, optimizer, num_microbatches=num_microbatches, learning_rate=learning_rate
    )
    return StepParts(
        mesh=mesh,
        graphdef=graphdef,
        params_template=params_template,
        rest=rest,
        abstract_state=abstract,
        state_shardings=shardings,
        step_fn=step_fn,
        eval_fn=make_eval_step(loss_fn),
    )


def abstract_batch(
    batch: Mapping[str, Any], mesh: jax.sharding.Mesh
) -> dict[str, jax.ShapeDtypeStruct]:
    """`batch` (arrays or ShapeDtypeStructs) as ShapeDtypeStructs split over the data-parallel axes."""
    shardings = state_sharding.batch_shardings(batch, mesh)
    dtypes = {k: v.dtype if hasattr(v, "dtype") else np.asarray(v).dtype for k, v in batch.items()}
    return {k: jax.ShapeDtypeStruct(np.shape(v), dtypes[k], sharding=shardings[k]) for k, v in batch.items()}


def batch_shapes(batch_size: int, seq_len: int, *, packed: bool = False) -> dict[str, jax.ShapeDtypeStruct]:
    """The seqio `DecoderFeatureConverter` features of a `[batch_size, seq_len]` batch (packed: with
    segment ids and positions)."""
    names = BATCH_FEATURES if packed else BATCH_FEATURES[:3]
    dtypes = {"decoder_loss_weights": jnp.float32}
    return {n: jax.ShapeDtypeStruct((batch_size, seq_len), dtypes.get(n, jnp.int32)) for n in names}


def lower_step(parts: StepParts, batch: Mapping[str, jax.ShapeDtypeStruct]) -> jax.stages.Lowered:
    """The train step jitted with explicit in/out shardings, the old state donated, lowered for `batch`
    (from `abstract_batch`); `.compile()` it."""
    batch_shardings = {k: v.sharding for k, v in batch.items()}
    replicated = NamedSharding(parts.mesh, PartitionSpec())
    jitted = jax.jit(
        parts.step_fn,
        in_shardings=(parts.state_shardings, batch_shardings),
        out_shardings=(parts.state_shardings, replicated),
        donate_argnums=(0,),
    )
    with partitioning.partitioned(parts.mesh):
        return jitted.lower(parts.abstract_state, dict(batch))
