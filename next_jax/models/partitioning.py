"""Logical axis names -> mesh axes, T5X style.

Model code names every parameter and key activation dimension logically (`batch`, `length`, `embed`, `mlp`,
`heads`, `kv_heads`, `kv`, `vocab`, `cache_length`, and `layers`, the leading axis of stacked `scan_layers`
parameters); the rules below, settable from gin, map those names onto the physical `data`/`fsdp`/`model` mesh axes. Rules are ordered by precedence and a mesh axis is used at most
once per array (flax's `logical_to_mesh_axes`), so activations `[batch, length, embed]` shard `batch` over
`data`+`fsdp` while parameters `[embed, mlp]` shard `embed` over `fsdp`. A dimension that the chosen mesh axes do
not divide (e.g. one KV head of a multi-query model on a 4-way `model` axis) is replicated instead.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import gin
import jax
from flax import nnx
from flax.core import spmd as core_spmd
from flax.linen import spmd as linen_spmd
from jax.sharding import NamedSharding, PartitionSpec

LogicalRules = tuple[tuple[str, str | tuple[str, ...] | None], ...]

# FSDP over `fsdp` (parameters' embed dim, batch), tensor parallelism over `model` (heads, mlp, vocab).
STANDARD_RULES: LogicalRules = (
    ("batch", ("data", "fsdp")),
    ("vocab", "model"),
    ("heads", "model"),
    ("kv_heads", "model"),
    ("mlp", "model"),
    ("embed", "fsdp"),
    ("length", None),
    ("cache_length", None),
    ("kv", None),
    # the stacked layer axis of `scan_layers` parameters: every device holds its shard of every layer
    ("layers", None),
)


@gin.configurable(module="next_jax.models")
def logical_axis_rules(
    rules: Sequence[Sequence[Any]] | None = None, additional_rules: Sequence[Sequence[Any]] = ()
) -> LogicalRules:
    """The logical->mesh rules in force: `rules` (default `STANDARD_RULES`) after `additional_rules`.

    `additional_rules` come first so that they take precedence (as in T5X).
    """
    base = STANDARD_RULES if rules is None else rules
    return tuple((str(name), _axes(axes)) for name, axes in (*additional_rules, *base))


def _axes(axes: Any) -> str | tuple[str, ...] | None:
    if axes is None or isinstance(axes, str):
        return axes
    return tuple(axes)


def _axis_size(mesh: jax.sharding.Mesh | jax.sharding.AbstractMesh, axes: Any) -> int:
    names = (axes,) if isinstance(axes, str) else axes
    return math.prod(mesh.shape[n] for n in names)


def mesh_spec(
    names: Sequence[str | None],
    shape: Sequence[int],
    mesh: jax.sharding.Mesh | jax.sharding.AbstractMesh,
    rules: LogicalRules,
) -> PartitionSpec:
    """PartitionSpec for an array of `shape` with logical `names`; undivisible dimensions are replicated."""
    if len(names) != len(shape):
        raise ValueError(f"logical names {tuple(names)} do not match shape {tuple(shape)}")
    spec = linen_spmd.logical_to_mesh_axes(tuple(names), rules)
    # Rules may name mesh axes this mesh lacks (e.g. a 2-axis mesh); those dimensions stay replicated.
    out = []
    for axes, size in zip(spec, shape, strict=True):
        present = axes is not None and all(
            a in mesh.shape for a in ((axes,) if isinstance(axes, str) else axes)
        )
        out.append(axes if present and size % _axis_size(mesh, axes) == 0 else None)
    return PartitionSpec(*out)


def constrain(x: jax.Array, names: Sequence[str | None]) -> jax.Array:
    """Sharding constraint on an activation by logical names; a no-op without a mesh and rules in context."""
    rules = core_spmd.get_logical_axis_rules()
    mesh = jax.sharding.get_abstract_mesh()
    if not rules or mesh.empty:
        return x
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, mesh_spec(names, x.shape, mesh, rules)))


@contextlib.contextmanager
def partitioned(mesh: jax.sharding.Mesh, rules: LogicalRules | None = None) -> Iterator[None]:
    """Context in which the model's logical constraints apply: `mesh` set and `rules` (default from gin)."""
    with jax.set_mesh(mesh), core_spmd.logical_axis_rules(logical_axis_rules() if rules is None else rules):
        yield


def _variable_spec(v: nnx.Variable, mesh: jax.sharding.Mesh, rules: LogicalRules) -> PartitionSpec:
    names = v.get_metadata().get("out_sharding")
    shape = v.get_value().shape
    if not names:
        return PartitionSpec(*([None] * len(shape)))
    return mesh_spec(names, shape, mesh, rules)


def partition_specs(tree: Any, mesh: jax.sharding.Mesh, rules: LogicalRules | None = None) -> Any:
    """Same tree as `tree` (an nnx State or Module split) with each Variable's value a PartitionSpec."""
    rules = logical_axis_rules() if rules is None else rules
    return jax.tree.map(
        lambda v: (
            v.replace(_variable_spec(v, mesh, rules)) if isinstance(v, nnx.Variable) else PartitionSpec()
        ),
        tree,
        is_leaf=lambda x: isinstance(x, nnx.Variable),
    )


def named_shardings(tree: Any, mesh: jax.sharding.Mesh, rules: LogicalRules | None = None) -> Any:
    """Same tree as `tree` with each Variable's value a NamedSharding on `mesh`."""
    return jax.tree.map(
        lambda s: NamedSharding(mesh, s),
        partition_specs(tree, mesh, rules),
        is_leaf=lambda x: isinstance(x, PartitionSpec),
    )


def shard_model(model: nnx.Module, mesh: jax.sharding.Mesh, rules: LogicalRules | None = None) -> nnx.Module:
    """Move an existing model's state onto `mesh` according to its logical axis names (in place)."""
    state = nnx.state(model)
    nnx.update(model, jax.device_put(state, named_shardings(state, mesh, rules)))
    return model


def create_sharded(
    factory: Callable[[], nnx.Module], mesh: jax.sharding.Mesh, rules: LogicalRules | None = None
) -> nnx.Module:
    """Build `factory()` with every parameter created directly in its shard (no full copy on one host)."""
    abstract = nnx.eval_shape(factory)
    graphdef, abstract_state = nnx.split(abstract)
    shardings = named_shardings(abstract_state, mesh, rules)

    @jax.jit
    def init() -> Any:
        state = nnx.state(factory())
        return jax.lax.with_sharding_constraint(state, shardings)

    with partitioned(mesh, rules):
        state = init()
    return nnx.merge(graphdef, state)


def sharding_for(
    names: Sequence[str | None],
    shape: Sequence[int],
    mesh: jax.sharding.Mesh,
    rules: LogicalRules | None = None,
) -> NamedSharding:
    """NamedSharding for a plain array (a batch, a KV cache buffer) from its logical names."""
    return NamedSharding(
        mesh, mesh_spec(names, shape, mesh, logical_axis_rules() if rules is None else rules)
    )
