"""The Ray side of `ray_pool`: the actor body that runs a sandboxed `VerificationPool` on its node, and where
actors go. Importing this module does not import ray."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
from collections.abc import Sequence
from typing import Any

from next_jax.execution.pool import VerificationPool
from next_jax.execution.stream import Cancellation
from next_jax.execution.verdict import Candidate, Verdict


class NodeVerifier:
    """The actor body: a local sandboxed pool on the actor's node. Async methods, so one actor verifies up to its
    pool's ``workers`` candidates at once, and a cancelled Ray task kills its candidate's processes."""

    def __init__(self, workers: int, timeout: float, judge_secret: bytes, pool_kwargs: dict) -> None:
        logging.basicConfig(level=logging.INFO)  # the pool logs the isolation in force on this node
        self.pool = VerificationPool(workers=workers, timeout=timeout, judge_secret=judge_secret, **pool_kwargs)
        self.workers = workers

    def ready(self) -> dict:
        """Where this actor runs and what its pool enforces (``uid_base``: its first sandbox uid)."""
        import ray

        slot = self.pool._slots[0]
        return {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "workers": self.workers,
                "isolation": self.pool.isolation, "uid_base": slot.candidate_cfg.uid}

    async def verify(self, candidate: Candidate, details: bool, all_tests: bool) -> Verdict:
        cancellation = Cancellation()
        future = self.pool.submit(candidate, details, all_tests, cancellation)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:  # ray.cancel: kill the candidate's processes now
            cancellation.cancel()
            raise

    async def trace(self, code: str, call: str, budgets: dict) -> Any:
        return await asyncio.to_thread(self.pool.trace, code, call, **budgets)

    async def evaluate(self, code: str, calls: list[str], setup: str) -> list[dict]:
        return await asyncio.to_thread(self.pool.evaluate, code, calls, setup)

    def close(self) -> None:
        """Close the pool cleanly (its cgroups and uid block released) before the actor is killed."""
        self.pool.close()


def plan_actors(nodes: Sequence[dict], cores_per_actor: int | None = None,
                num_actors: int | None = None) -> list[tuple[str, int]]:
    """``(node id, workers)`` per actor: one per alive node with all its CPUs, or ``cpus // cores_per_actor`` of
    ``cores_per_actor`` workers each; ``num_actors`` keeps that many, taken across nodes in turn (so two actors
    on a two-node cluster land on both nodes)."""
    per_node = []
    for node in sorted(nodes, key=lambda n: n["NodeID"]):
        cpus = int(node.get("Resources", {}).get("CPU", 0))
        if not node.get("Alive") or cpus < 1:
            continue
        if cores_per_actor:
            per_node.append([(node["NodeID"], min(cores_per_actor, cpus))] * max(1, cpus // cores_per_actor))
        else:
            per_node.append([(node["NodeID"], cpus)])
    order = [a for group in itertools.zip_longest(*per_node) for a in group if a is not None]
    return order[:num_actors] if num_actors else order


@functools.cache
def actor_class() -> Any:
    import ray

    return ray.remote(NodeVerifier)
