"""Logical axis rules, partition specs and the mesh helper (single device; multi-device in test_sharding)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from flax import nnx
from jax.sharding import AbstractMesh, PartitionSpec

from next_jax.models import partitioning
from next_jax.models.decoder import Decoder
from next_jax.models.mesh import create_mesh

MESH = AbstractMesh((1, 2, 4), ("data", "fsdp", "model"))
RULES = partitioning.STANDARD_RULES


@pytest.mark.parametrize(
    ("names", "shape", "expected"),
    [
        (("embed", "heads", "kv"), (32, 4, 8), ("fsdp", "model", None)),
        (("heads", "kv", "embed"), (4, 8, 32), ("model", None, "fsdp")),
        (("vocab", "embed"), (128, 32), ("model", "fsdp")),
        # activations: batch takes fsdp first, so embed stays whole
        (("batch", "length", "embed"), (4, 8, 32), (("data", "fsdp"), None, None)),
        (("batch", "length", "vocab"), (4, 8, 128), (("data", "fsdp"), None, "model")),
        # one KV head cannot be split 4 ways; an odd batch cannot be split 2 ways
        (("embed", "kv_heads", "kv"), (32, 1, 8), ("fsdp", None, None)),
        (("batch", "length", "embed"), (3, 8, 32), (None, None, None)),
        (("batch", "cache_length", "kv_heads", "kv"), (4, 16, 8, 8), (("data", "fsdp"), None, "model", None)),
    ],
)
def test_standard_rules_map_logical_names_to_mesh_axes(names, shape, expected):
    assert partitioning.mesh_spec(names, shape, MESH, RULES) == PartitionSpec(*expected)


def test_rules_naming_axes_the_mesh_lacks_leave_dimensions_replicated():
    two_axis = AbstractMesh((2, 4), ("data", "model"))
    assert partitioning.mesh_spec(("embed", "mlp"), (32, 64), two_axis, RULES) == PartitionSpec(None, "model")


def test_additional_rules_take_precedence():
    rules = partitioning.logical_axis_rules(additional_rules=[("embed", "model")])
    assert rules[0] == ("embed", "model")
    assert partitioning.mesh_spec(("embed", "mlp"), (32, 64), MESH, rules) == PartitionSpec("model", None)
    assert partitioning.logical_axis_rules(rules=[("batch", ["data"])]) == (("batch", ("data",)),)


def test_mismatched_names_are_rejected():
    with pytest.raises(ValueError):
        partitioning.mesh_spec(("embed",), (32, 64), MESH, RULES)


def test_constrain_is_a_no_op_without_mesh_or_rules():
    x = jnp.ones((2, 3))
    assert partitioning.constrain(x, ("batch", "embed")) is x


def test_every_parameter_gets_a_spec_from_its_logical_names(family_configs):
    model = nnx.eval_shape(lambda: Decoder(family_configs["qwen2"], rngs=nnx.Rngs(0)))
    state = nnx.state(model)
    specs = partitioning.partition_specs(state, MESH)
    flat = dict(nnx.to_flat_state(specs))
    assert len(flat) == len(jax.tree.leaves(state))
    assert flat[("layers", 0, "attn", "q")].get_value() == PartitionSpec("fsdp", "model", None)
    assert flat[("layers", 1, "attn", "q_bias")].get_value() == PartitionSpec("model", None)
    assert flat[("layers", 0, "mlp", "down")].get_value() == PartitionSpec("model", "fsdp")
    assert flat[("final_norm", "scale")].get_value() == PartitionSpec("fsdp")
    for path, variable in flat.items():
        names = variable.get_metadata()["out_sharding"]
        assert len(names) == len(variable.get_value()), path


def test_create_mesh_resolves_the_rest_and_checks_sizes():
    devices = jax.devices()
    mesh = create_mesh()
    assert dict(mesh.shape) == {"data": len(devices), "fsdp": 1, "model": 1}
    assert dict(create_mesh(data=1, fsdp=-1, devices=devices[:1]).shape) == {"data": 1, "fsdp": 1, "model": 1}
    for bad in (dict(data=-1, fsdp=-1), dict(model=0), dict(data=1, model=len(devices) + 1)):
        with pytest.raises(ValueError):
            create_mesh(**bad)
