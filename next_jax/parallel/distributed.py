"""One process per host: joining the cluster (`jax.distributed`) and the few things processes agree on.

`initialize` must run before anything touches jax's devices. With no cluster flags it joins a Cloud TPU
slice by itself (jax finds its peers from the TPU VM's metadata) and is a no-op elsewhere (one process).
With T5X's flags (`--coordinator_address=HOST:PORT --process_count=N --process_index=I`) it joins an
explicit cluster with a short heartbeat timeout, so that when a peer dies the others stop within seconds
instead of jax's default 100 s.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import jax
import numpy as np

log = logging.getLogger(__name__)

# Explicit clusters: a dead peer is noticed (and every other process aborted) within about this long.
DEFAULT_HEARTBEAT_TIMEOUT_S = 15


def _on_cloud_tpu_vm() -> bool:
    # jax decides this when it is imported (from the TPU chips it sees); there is no public accessor.
    from jax._src import cloud_tpu_init

    return bool(getattr(cloud_tpu_init, "running_in_cloud_tpu_vm", False))


def initialize(
    coordinator_address: str | None = None,
    process_count: int | None = None,
    process_index: int | None = None,
    *,
    coordinator_bind_address: str | None = None,
    heartbeat_timeout_s: int | None = None,
    initialization_timeout_s: int = 300,
) -> None:
    """Join the run's processes; a no-op for one process off TPU.

    Give all three of `coordinator_address`, `process_count` and `process_index`, or none. Cluster
    auto-detection is switched off for an explicit cluster, so the flags alone decide it. The coordinator
    (process 0) listens on `coordinator_bind_address` (default: jax's, every interface on the port).
    `heartbeat_timeout_s` defaults to `DEFAULT_HEARTBEAT_TIMEOUT_S` for an explicit cluster and to jax's own
    (100 s) on a TPU slice.
    """
    given = [coordinator_address is not None, process_count is not None, process_index is not None]
    if any(given) and not all(given):
        raise ValueError("give all of --coordinator_address, --process_count and --process_index, or none")
    if not any(given):
        if _on_cloud_tpu_vm():
            jax.distributed.initialize(**({"heartbeat_timeout_seconds": heartbeat_timeout_s}
                                          if heartbeat_timeout_s else {}))
            log.info("joined the TPU slice as process %d of %d", jax.process_index(), jax.process_count())
        return
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} is not in [0, {process_count})")
    if process_count == 1:
        return
    heartbeat_timeout_s = heartbeat_timeout_s or DEFAULT_HEARTBEAT_TIMEOUT_S
    jax.distributed.initialize(
        coordinator_address,
        process_count,
        process_index,
        cluster_detection_method="deactivate",
        coordinator_bind_address=coordinator_bind_address,
        heartbeat_timeout_seconds=heartbeat_timeout_s,
        initialization_timeout=initialization_timeout_s,
    )
    log.info("process %d of %d joined (coordinator %s; a peer that dies stops this process within ~%d s)",
             process_index, process_count, coordinator_address, heartbeat_timeout_s)


def is_main() -> bool:
    """Whether this is process 0, the one that writes shared files."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process gets here (no-op for one process). Every process must pass the same names in
    the same order; a dead peer makes jax abort this process within the heartbeat timeout."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def process_share(count: int, *, process_index: int | None = None, process_count: int | None = None) -> range:
    """Positions of this process's items among `count` items in an order every process agrees on: round robin,
    so the split depends only on the order and the process count (not on what is already done)."""
    index = jax.process_index() if process_index is None else process_index
    total = jax.process_count() if process_count is None else process_count
    return range(index, count, total)


def allgather(values: Sequence[float]) -> np.ndarray:
    """`[process_count, len(values)]`: every process's `values` (a few numbers), on every process."""
    row = np.asarray(values, np.float64)
    if jax.process_count() == 1:
        return row[None]
    from jax.experimental import multihost_utils

    # Gathered as float32 (jax's default width): a few significant digits are all these numbers need.
    gathered = multihost_utils.process_allgather(row.astype(np.float32))
    return np.asarray(gathered, np.float64).reshape(jax.process_count(), -1)
