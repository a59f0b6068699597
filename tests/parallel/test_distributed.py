"""`next_jax.parallel`: one process (what every single-host run does) and two real processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from next_jax.models.mesh import create_mesh
from next_jax.parallel import distributed
from next_jax.parallel.placement import local_replica, place

REPO = Path(__file__).resolve().parents[2]


def test_process_share_splits_round_robin_into_disjoint_covering_parts():
    parts = [list(distributed.process_share(10, process_index=i, process_count=3)) for i in range(3)]
    assert parts == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert list(distributed.process_share(4)) == [0, 1, 2, 3]  # one process: everything


def test_initialize_needs_all_cluster_flags_or_none():
    with pytest.raises(ValueError, match="all of"):
        distributed.initialize("127.0.0.1:1234", 2, None)
    with pytest.raises(ValueError, match="not in"):
        distributed.initialize("127.0.0.1:1234", 2, 2)
    distributed.initialize()  # off TPU, no flags: one process, nothing to join
    distributed.initialize("127.0.0.1:1234", 1, 0)  # a cluster of one needs no coordinator
    assert jax.process_count() == 1 and distributed.is_main()


def test_one_process_helpers_are_plain():
    distributed.barrier("alone")
    gathered = distributed.allgather([1.25, 3.0])
    assert gathered.shape == (1, 2) and gathered.tolist() == [[1.25, 3.0]]
    tree = {"a": np.ones((2, 3), np.float32)}
    placed = place(tree, {"a": jax.sharding.SingleDeviceSharding(jax.devices()[0])})
    assert isinstance(placed["a"], jax.Array) and np.array_equal(np.asarray(placed["a"]), tree["a"])
    mesh = create_mesh(devices=jax.local_devices())
    assert local_replica(placed, mesh) is placed  # nothing spread over processes: returned as it is


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_place_gather_and_replicate():
    port = _free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    worker = [sys.executable, str(Path(__file__).with_name("two_process_worker.py")), str(port)]
    procs = [subprocess.Popen([*worker, str(i)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(2)]
    try:
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    seen = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    value = np.arange(32, dtype=np.float32).reshape(8, 4)
    for i, s in enumerate(seen):
        assert (s["index"], s["count"], s["main"]) == (i, 2, i == 0)
        assert s["rows_held"] == value[4 * i: 4 * i + 4].tolist()  # each process holds its own rows
        assert s["sum"] == 2 * float(value.sum())
        assert s["replica_equal"] and s["replica_local"]
        assert s["gathered"] == [[0.0, 0.5], [1.0, 1.5]]
        assert s["share"] == [[0, 2, 4], [1, 3]][i]
