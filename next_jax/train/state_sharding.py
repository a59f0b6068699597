"""Shardings of the training state: parameters from the model's logical axes, optimizer state derived
from them, and batches split over the data-parallel axes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from next_jax.models import partitioning


def param_shardings(params_state: nnx.State, mesh: jax.sharding.Mesh) -> dict:
    """Pure-dict tree of NamedShardings for an nnx params State, from its variables' logical names."""
    return partitioning.named_shardings(params_state, mesh).to_pure_dict()


def _derived_spec(
    leaf_shape: tuple[int, ...], param_shape: tuple[int, ...], spec: PartitionSpec
) -> PartitionSpec:
    """Spec of an optimizer statistic computed from a parameter of `param_shape` sharded as `spec`.

    Same shape (Adam moments, Adafactor unfactored v): the parameter's spec. Adafactor's factored row and
    column statistics drop one dimension of the parameter (one of its two largest, which for stacked
    `scan_layers` parameters or 3-D kernels need not be the last two): drop that entry of the spec. Anything
    else (placeholders of shape (1,)) is small and replicated.
    """
    axes = tuple(spec) + (None,) * (len(param_shape) - len(spec))
    if leaf_shape == param_shape:
        return PartitionSpec(*axes)
    if len(param_shape) >= 2 and len(leaf_shape) == len(param_shape) - 1:
        # with equal sizes several dimensions match; dropping any of them gives a valid spec of that shape
        for dim in reversed(range(len(param_shape))):
            if param_shape[:dim] + param_shape[dim + 1 :] == leaf_shape:
                return PartitionSpec(*axes[:dim], *axes[dim + 1 :])
    return PartitionSpec()


def optimizer_state_shardings(
    optimizer: optax.GradientTransformation, abstract_params: Any, shardings: Any, mesh: jax.sharding.Mesh
) -> Any:
    """NamedShardings for `optimizer.init(params)` laid out like the parameters they track.

    Computed from shapes only (`jax.eval_shape`), so nothing is materialised.
    """
    abstract_state = jax.eval_shape(optimizer.init, abstract_params)
    replicated = NamedSharding(mesh, PartitionSpec())

    def leaf_sharding(leaf, param, sharding):
        return NamedSharding(mesh, _derived_spec(tuple(leaf.shape), tuple(param.shape), sharding.spec))

    return optax.tree_map_params(
        optimizer,
        leaf_sharding,
        abstract_state,
        abstract_params,
        shardings,
        transform_non_params=lambda _: replicated,
        is_leaf=lambda x: isinstance(x, jax.ShapeDtypeStruct),
    )


def batch_shardings(batch: Mapping[str, Any], mesh: jax.sharding.Mesh) -> dict[str, NamedSharding]:
    """Each `[batch, length, ...]` feature split over the data-parallel mesh axes on its first dimension."""
    out = {}
    for name, value in batch.items():
        names = ("batch", "length") + (None,) * (len(value.shape) - 2)
        out[name] = partitioning.sharding_for(names[: len(value.shape)], value.shape, mesh)
    return out
