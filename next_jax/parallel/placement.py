"""Putting arrays onto shardings that may span several processes.

With one process this is `jax.device_put`. With several, `device_put` of a host value onto devices that other
processes own is not the way (every process holds the value, but only its own devices may be written), so:
host values that every process holds alike are cut into each process's pieces
(`jax.make_array_from_process_local_data` with the global shape), and arrays already spread over the
processes are moved by a jitted identity, device to device.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def _identity(tree: Any) -> Any:
    return tree


def _spans_processes(x: Any) -> bool:
    return isinstance(x, jax.Array) and not x.is_fully_addressable


def _place_one(x: Any, sharding: jax.sharding.Sharding) -> jax.Array:
    if sharding.is_fully_addressable:
        return jax.device_put(x, sharding)
    if _spans_processes(x):
        return jax.jit(_identity, out_shardings=sharding)(x)
    value = np.asarray(x)  # the same on every process: each keeps the rows its devices hold
    return jax.make_array_from_process_local_data(sharding, value, value.shape)


def place(tree: Any, shardings: Any) -> Any:
    """`tree` (host values identical on every process, or jax arrays) laid out on `shardings` (a matching
    tree of shardings). Call it on every process alike when `shardings` span several."""
    if jax.process_count() == 1:
        return jax.device_put(tree, shardings)
    leaves = jax.tree.leaves(tree)
    if leaves and all(_spans_processes(x) for x in leaves):
        return jax.jit(_identity, out_shardings=shardings)(tree)  # one program for the whole tree
    return jax.tree.map(_place_one, tree, shardings)


def local_replica(tree: Any, local_mesh: Mesh) -> Any:
    """A copy of `tree` replicated over every device of `local_mesh` (this process's devices), made device to
    device: arrays spread over the processes are first gathered whole onto each device of their mesh (a
    jitted identity, so every process calls this alike), then this process's copies are re-wrapped as arrays
    of `local_mesh`. Arrays this process already holds whole are returned as they are. Every device must have
    room for the whole tree."""
    leaves, treedef = jax.tree.flatten(tree)
    spread = [i for i, x in enumerate(leaves) if _spans_processes(x)]
    if not spread:
        return tree
    global_mesh = leaves[spread[0]].sharding.mesh
    gathered = jax.jit(_identity, out_shardings=NamedSharding(global_mesh, PartitionSpec()))(
        [leaves[i] for i in spread])
    local = NamedSharding(local_mesh, PartitionSpec())
    for i, x in zip(spread, gathered, strict=True):
        by_device = {shard.device: shard.data for shard in x.addressable_shards}
        leaves[i] = jax.make_array_from_single_device_arrays(
            x.shape, local, [by_device[d] for d in local_mesh.devices.flat])
    return jax.tree.unflatten(treedef, leaves)
