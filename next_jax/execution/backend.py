"""Which verification pool a run gets: the local sandboxed pool (default) or one spread over a Ray cluster.

In gin (the loop and the data layer build their pool through ``make_pool``):

    pool_backend.backend = 'ray'
    pool_backend.ray_address = 'auto'      # an existing cluster; unset: a local cluster of `workers` CPUs
    pool_backend.cores_per_actor = 8       # unset: one actor per node, as many pool workers as its CPUs
    pool_backend.reserve_cpus = True       # actors hold their CPUs in Ray's accounting (default: placed by node)

The only module of ``next_jax.execution`` that imports gin (a pure-Python config library): nothing a sandboxed
child imports reaches it, so the children stay stdlib-only. Ray is imported only when the ``ray`` backend is built.
"""

from __future__ import annotations

from typing import Any

import gin

from next_jax.execution.pool import VerificationPool

BACKENDS = ("local", "ray")


@gin.configurable("pool_backend", denylist=["workers", "timeout"])
def make_pool(workers: int = 2, timeout: float = 10.0, *, backend: str = "local", ray_address: str | None = None,
              cores_per_actor: int | None = None, num_actors: int | None = None,
              max_in_flight_per_actor: int | None = None, reserve_cpus: bool = False, **pool_kwargs: Any) -> Any:
    """A started verification pool: ``VerificationPool(workers, timeout)`` or, with ``backend='ray'``, a
    ``RayVerificationPool`` (same interface; ``workers`` sizes only a local Ray cluster, see ``ray_pool``)."""
    if backend == "local":
        return VerificationPool(workers=workers, timeout=timeout, **pool_kwargs)
    if backend == "ray":
        from next_jax.execution.ray_pool import RayVerificationPool

        return RayVerificationPool(workers=workers, timeout=timeout, ray_address=ray_address,
                                   cores_per_actor=cores_per_actor, num_actors=num_actors,
                                   max_in_flight_per_actor=max_in_flight_per_actor, reserve_cpus=reserve_cpus,
                                   **pool_kwargs)
    raise ValueError(f"unknown pool backend {backend!r}; one of {BACKENDS}")
