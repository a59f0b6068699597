"""Device mesh with the three axes next-jax shards over: `data`, `fsdp`, `model`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import gin
import jax
import numpy as np

MESH_AXES = ("data", "fsdp", "model")


def _resolve(sizes: Sequence[int], count: int) -> tuple[int, ...]:
    """Replace at most one `-1` by the devices left over; check that the product is `count`."""
    if sum(s == -1 for s in sizes) > 1:
        raise ValueError(f"at most one mesh axis may be -1, got {tuple(sizes)}")
    if any(s == 0 or s < -1 for s in sizes):
        raise ValueError(f"mesh axis sizes must be positive or -1, got {tuple(sizes)}")
    known = math.prod(s for s in sizes if s != -1)
    if count % known:
        raise ValueError(f"{count} devices do not split into mesh axes {tuple(sizes)}")
    resolved = tuple(count // known if s == -1 else s for s in sizes)
    if math.prod(resolved) != count:
        raise ValueError(f"mesh {resolved} needs {math.prod(resolved)} devices, have {count}")
    return resolved


@gin.configurable(module="next_jax.models")
def create_mesh(
    data: int = -1,
    fsdp: int = 1,
    model: int = 1,
    devices: Sequence[jax.Device] | None = None,
    along_interconnect: bool | None = None,
) -> jax.sharding.Mesh:
    """A `('data', 'fsdp', 'model')` mesh over `devices` (default: all); one size may be -1 (= the rest).

    With `along_interconnect` (the default when `devices` is None) jax lays the mesh out along the physical
    interconnect (TPU torus: the `model` axis on neighbouring chips); otherwise the given order is kept.
    """
    devs = list(jax.devices() if devices is None else devices)
    shape = _resolve((data, fsdp, model), len(devs))
    axis_types = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
    if along_interconnect or (along_interconnect is None and devices is None):
        return jax.make_mesh(shape, MESH_AXES, axis_types=axis_types, devices=devs)
    return jax.sharding.Mesh(np.asarray(devs, dtype=object).reshape(shape), MESH_AXES, axis_types=axis_types)
