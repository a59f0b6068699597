"""One of two processes on 127.0.0.1 (one CPU device each): `python two_process_worker.py PORT INDEX`.

Checks the placement helpers across processes and prints one JSON line of what it saw."""

from __future__ import annotations

import json
import sys

import numpy as np


def main(port: int, index: int) -> None:
    from next_jax.parallel import distributed

    distributed.initialize(f"127.0.0.1:{port}", 2, index, coordinator_bind_address=f"127.0.0.1:{port}",
                           heartbeat_timeout_s=10, initialization_timeout_s=60)
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    from next_jax.models.mesh import create_mesh
    from next_jax.parallel.placement import local_replica, place

    mesh = create_mesh(data=2, devices=jax.devices())
    value = np.arange(32, dtype=np.float32).reshape(8, 4)
    tree = {"rows": value, "whole": value.T.copy()}
    shardings = {"rows": NamedSharding(mesh, PartitionSpec("data")), "whole": NamedSharding(mesh, PartitionSpec())}
    placed = place(tree, shardings)  # host values alike on both processes
    moved = place(placed, {"rows": shardings["whole"], "whole": shardings["rows"]})  # spread -> spread
    local_mesh = create_mesh(devices=jax.local_devices())
    replica = local_replica(moved, local_mesh)
    distributed.barrier("checked")
    print(json.dumps({
        "index": jax.process_index(), "count": jax.process_count(), "main": distributed.is_main(),
        "rows_held": np.asarray(placed["rows"].addressable_shards[0].data).tolist(),
        "sum": float(jax.jit(lambda t: t["rows"].sum() + t["whole"].sum())(moved)),
        "replica_equal": all(np.array_equal(np.asarray(replica[k]), tree[k]) for k in tree),
        "replica_local": all(r.is_fully_addressable and r.sharding.mesh == local_mesh for r in replica.values()),
        "gathered": distributed.allgather([index, 0.5 + index]).tolist(),
        "share": list(distributed.process_share(5)),
    }), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
