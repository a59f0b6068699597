"""Verification spread over a Ray cluster: one actor per node (or per N cores), each running today's sandboxed
``VerificationPool`` on its node, so every isolation guarantee of the local pool holds unchanged.

    pool = RayVerificationPool(workers=2, timeout=5.0)                     # a local Ray cluster of 2 CPUs
    pool = RayVerificationPool(ray_address="auto", cores_per_actor=8)      # an existing cluster
    verdicts = pool.verify(candidates)       # same interface as VerificationPool: submit, stream, trace, evaluate

The driver holds candidates in a queue and sends each actor at most ``max_in_flight_per_actor`` at a time
(backpressure: a slow node is never buried). A candidate whose actor dies (the actor process, its worker or its
node) is re-run on another actor; its future is completed exactly once, so a verdict is never lost and never
counted twice. After ``max_attempts`` such losses it gets a ``sandbox_error`` verdict rather than looping.

Importing this module does not import ray (``pip install 'next-jax[ray]'``); constructing a pool does. Every node
must have next-jax installed (the actors import ``next_jax.execution``), and sandbox uids are reserved per actor
on its own host as the local pool does.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import itertools
import logging
import os
import queue
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from next_jax.execution import verdict as v
from next_jax.execution.pool import _cancelled, _host_secret
from next_jax.execution.ray_actor import actor_class, plan_actors
from next_jax.execution.stream import Cancellation, VerdictStream
from next_jax.execution.verdict import Candidate, Verdict

log = logging.getLogger(__name__)


@dataclasses.dataclass(eq=False)
class _Job:
    candidate: Candidate
    details: bool
    all_tests: bool
    future: concurrent.futures.Future
    cancellation: Cancellation | None
    attempts: int = 0


@dataclasses.dataclass(eq=False)
class _Actor:
    handle: Any
    node: str
    workers: int
    limit: int  # candidates in flight at most
    in_flight: int = 0
    ready: bool = False
    alive: bool = True
    info: dict = dataclasses.field(default_factory=dict)
    ready_ref: Any = None  # a replacement's pending ready() call, kept referenced until it answers


class _RemoteRun:
    """What a stream's ``Cancellation`` kills for a candidate on Ray: its task (the actor then kills its children)."""

    def __init__(self, ref: Any) -> None:
        self.ref = ref

    def kill(self) -> None:
        import ray

        try:
            ray.cancel(self.ref)
        except Exception:  # already finished, or its actor is gone: nothing left to kill
            pass


class RayVerificationPool:
    """``VerificationPool``'s interface over Ray actors (see the module docstring).

    ``ray_address``: ``"auto"`` (or ``ray://...``, ``host:port``) joins an existing cluster; None starts a local
    one with ``workers`` CPUs (or uses the one this process is already connected to). ``cores_per_actor``: None
    places one actor per node with as many pool workers as the node has CPUs; N places ``cpus // N`` actors of N
    workers. ``num_actors`` caps the number of actors. ``max_in_flight_per_actor`` defaults to twice an actor's
    workers. Actors are placed by node, outside Ray's CPU accounting, so two pools of one process (the loop's and
    the trace cache's) share nodes as two local pools share a host; ``reserve_cpus`` makes each actor hold its
    workers' CPUs instead, so other Ray work is not scheduled onto them (a pool then needs them free). ``pool_kwargs`` go to each actor's ``VerificationPool`` (``memory_bytes``, ``namespaces``, ...).
    """

    def __init__(self, workers: int = 2, timeout: float = 10.0, *, ray_address: str | None = None,
                 cores_per_actor: int | None = None, num_actors: int | None = None,
                 max_in_flight_per_actor: int | None = None, reserve_cpus: bool = False, max_attempts: int = 3,
                 start_timeout: float = 300.0, judge_secret: bytes | None = None, **pool_kwargs: Any) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self._strategy = NodeAffinitySchedulingStrategy
        self.timeout = float(timeout)
        self.max_attempts = max_attempts
        self._init_args = (judge_secret if judge_secret is not None else _host_secret(), pool_kwargs)
        self._max_in_flight_per_actor, self._reserve_cpus = max_in_flight_per_actor, reserve_cpus
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            # No usage telemetry from a verification pool; an explicit setting in the environment wins.
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            local = {} if ray_address else {"num_cpus": workers}
            ray.init(address=ray_address, include_dashboard=False, configure_logging=False, **local)
        self._lock = threading.RLock()  # re-entered when a verdict's done-callback asks the pool something
        self._actors: list[_Actor] = []
        self._pending: collections.deque[_Job] = collections.deque()
        self._in_flight: dict[Any, tuple[_Job, _Actor, _RemoteRun]] = {}
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._replacements_left = 0
        self._round_robin = itertools.count()
        self.stats = collections.Counter()  # dispatched, reruns, lost_candidates, actors_started, actors_lost
        try:
            plan = plan_actors(ray.nodes(), cores_per_actor, num_actors)
            if not plan:
                raise RuntimeError("the Ray cluster has no alive node with a CPU")
            self._replacements_left = 2 * len(plan)  # a cluster losing actors faster than this is broken
            for node, n in plan:
                self._start_actor(node, n, soft=False)
            infos = ray.get([a.handle.ready.remote() for a in self._actors], timeout=start_timeout)
        except BaseException:
            self._shutdown_ray()
            raise
        for actor, info in zip(self._actors, infos, strict=True):
            actor.info, actor.ready = info, True
        self.isolation = infos[0]["isolation"]
        if len({i["isolation"] for i in infos}) > 1:
            log.warning("Ray actors enforce different isolation: %s", sorted({i["isolation"] for i in infos}))
        self._thread = threading.Thread(target=self._run, name="ray-verify-dispatch", daemon=True)
        self._thread.start()
        log.info("Ray verification pool: %d actors (%s workers), isolation in force: %s", len(self._actors),
                 "+".join(str(a.workers) for a in self._actors), self.isolation)

    # -- the interface of VerificationPool -----------------------------------------------------------------
    @property
    def actors(self) -> list[dict]:
        """The live actors: node, pid, workers, uid_base, isolation, and the Ray handle (tests kill them)."""
        with self._lock:
            return [{**a.info, "handle": a.handle} for a in self._actors if a.alive and a.ready]

    @property
    def workers(self) -> int:
        with self._lock:
            return sum(a.workers for a in self._actors if a.alive)

    def submit(self, candidate: Candidate, details: bool = False, all_tests: bool = False,
               cancellation: Cancellation | None = None) -> concurrent.futures.Future[Verdict]:
        """Queue ``candidate``; its verdict comes back on the future. Never blocks: the driver's queue holds what
        the actors have no room for (use ``stream`` to bound it)."""
        if self._closed:
            raise RuntimeError("pool is closed")
        future: concurrent.futures.Future[Verdict] = concurrent.futures.Future()
        future.set_running_or_notify_cancel()
        self._events.put(("job", _Job(candidate, details, all_tests, future, cancellation)))
        return future

    def verify(self, candidates: Iterable[Candidate], details: bool = False, all_tests: bool = False) -> list[Verdict]:
        """Verdicts in input order."""
        futures = [self.submit(c, details, all_tests) for c in candidates]
        return [f.result() for f in futures]

    def stream(self, max_in_flight: int | None = None, details: bool = False,
               all_tests: bool = False) -> VerdictStream:
        """As ``VerificationPool.stream``; the default bound is the actors' in-flight bounds together."""
        if self._closed:
            raise RuntimeError("pool is closed")
        with self._lock:
            room = sum(a.limit for a in self._actors if a.alive)
        return VerdictStream(self, max_in_flight or room, details, all_tests)  # type: ignore[arg-type]

    def timeout_of(self, candidate: Candidate) -> float:
        return self.timeout if candidate.timeout is None else float(candidate.timeout)

    def trace(self, code: str, call: str, **budgets: Any) -> Any:
        """Trace ``call`` on ``code`` in a confined child on one of the actors; a tracer ``Trace``."""
        return self._call("trace", code, call, budgets)

    def evaluate(self, code: str, calls: Sequence[str], setup: str = "") -> list[dict]:
        """As ``VerificationPool.evaluate``, on one of the actors."""
        return self._call("evaluate", code, list(calls), setup)

    def close(self) -> None:
        """Wait for the queued candidates, then stop the actors (and the local Ray cluster if this pool began it)."""
        if self._closed:
            return
        self._closed = True
        self._events.put(("stop", None))
        self._thread.join()
        self._shutdown_ray()

    def __enter__(self) -> RayVerificationPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- actors ---------------------------------------------------------------------------------------------
    def _start_actor(self, node: str, workers: int, soft: bool) -> _Actor:
        cls = actor_class()
        handle = cls.options(num_cpus=workers if self._reserve_cpus else 0,
                             scheduling_strategy=self._strategy(node, soft=soft)).remote(
            workers, self.timeout, *self._init_args)
        actor = _Actor(handle, node, workers, self._max_in_flight_per_actor or 2 * workers)
        self._actors.append(actor)
        self.stats["actors_started"] += 1
        return actor

    def _lost(self, actor: _Actor, error: BaseException) -> None:
        """``actor`` died (or is unreachable): stop using it and start a replacement (same node if it is alive).
        Called with the lock held."""
        import ray

        if not actor.alive:
            return
        actor.alive = False
        self.stats["actors_lost"] += 1
        log.warning("Ray verification actor on node %s lost (%s); its candidates are re-run elsewhere",
                    actor.node[:12], type(error).__name__)
        try:
            ray.kill(actor.handle, no_restart=True)  # unreachable but running: it must not answer later
        except Exception:
            pass
        if self._replacements_left <= 0 or self._closed:
            return
        self._replacements_left -= 1
        new = self._start_actor(actor.node, actor.workers, soft=True)
        new.ready_ref = new.handle.ready.remote()
        new.ready_ref._on_completed(lambda result: self._events.put(("ready", (new, result))))

    def _live(self) -> list[_Actor]:
        return [a for a in self._actors if a.alive and a.ready]

    def _call(self, method: str, *args: Any) -> Any:
        """One blocking call on a live actor, moved to another if it dies."""
        import ray

        for _ in range(self.max_attempts):
            with self._lock:
                live = self._live()
                if not live:
                    raise RuntimeError("no Ray verification actor is alive")
                actor = live[next(self._round_robin) % len(live)]
            try:
                return ray.get(getattr(actor.handle, method).remote(*args))
            except ray.exceptions.RayTaskError as e:  # the pool's own exception (SyntaxError, TimeoutError, ...)
                raise (e.cause if isinstance(e.cause, Exception) else e) from None
            except ray.exceptions.RayError as e:
                with self._lock:
                    self._lost(actor, e)
        raise RuntimeError(f"{method} failed on {self.max_attempts} Ray actors in turn")

    # -- the dispatcher (one thread; the lock guards what other threads read) ---------------------------------
    def _run(self) -> None:
        stopping = False
        while True:
            kind, item = self._events.get()
            with self._lock:
                try:
                    self._handle(kind, item)
                except Exception:  # a bug here must not leave every caller waiting: log it, go on
                    log.exception("Ray verification dispatcher failed on a %r event", kind)
                if kind == "stop":
                    stopping = True
                if stopping and not self._pending and not self._in_flight:
                    return

    def _handle(self, kind: str, item: Any) -> None:
        if kind == "job":
            self._pending.append(item)
        elif kind == "done":
            self._finish(*item)
        elif kind == "ready":
            actor, result = item
            if isinstance(result, Exception):
                self._lost(actor, result)
            else:
                actor.info, actor.ready = result, True
            actor.ready_ref = None
        self._dispatch()

    def _dispatch(self) -> None:
        while self._pending:
            job = self._pending[0]
            if job.cancellation is not None and job.cancellation.cancelled:
                self._pending.popleft()
                job.future.set_result(_cancelled(job.candidate))
                continue
            room = [a for a in self._live() if a.in_flight < a.limit]
            if not room:
                break
            actor = min(room, key=lambda a: a.in_flight / a.limit)
            self._pending.popleft()
            try:
                ref = actor.handle.verify.remote(job.candidate, job.details, job.all_tests)
            except Exception as e:  # Ray itself is gone (shut down under us): the caller hears of it
                job.future.set_exception(e)
                continue
            run = _RemoteRun(ref)
            actor.in_flight += 1
            self._in_flight[ref] = (job, actor, run)
            self.stats["dispatched"] += 1
            ref._on_completed(functools.partial(_notify, self._events, ref))
            if job.cancellation is not None:
                job.cancellation.watch(run)
        if self._pending and not any(a.alive for a in self._actors):
            error = RuntimeError("every Ray verification actor died and none could be replaced")
            while self._pending:
                self._pending.popleft().future.set_exception(error)

    def _finish(self, ref: Any, result: Any) -> None:
        import ray

        entry = self._in_flight.pop(ref, None)
        if entry is None:
            return
        job, actor, run = entry
        actor.in_flight -= 1
        if job.cancellation is not None:
            job.cancellation.forget([run])  # type: ignore[list-item]
        if isinstance(result, Verdict):
            job.future.set_result(result)
        elif job.cancellation is not None and job.cancellation.cancelled:
            job.future.set_result(_cancelled(job.candidate))
        elif isinstance(result, ray.exceptions.RayTaskError):  # a bug in the actor's pool, as the local pool raises
            job.future.set_exception(result.cause if isinstance(result.cause, Exception) else result)
        elif isinstance(result, ray.exceptions.TaskCancelledError):
            job.future.set_result(_cancelled(job.candidate))
        elif isinstance(result, ray.exceptions.RayError):  # the actor, its worker or its node died
            self._lost(actor, result)
            job.attempts += 1
            if job.attempts < self.max_attempts:
                self.stats["reruns"] += 1
                self._pending.appendleft(job)
            else:
                self.stats["lost_candidates"] += 1
                job.future.set_result(Verdict(str(job.candidate.id), v.SANDBOX_ERROR, 0, len(job.candidate.tests),
                                              ({"type": "RayActorLost", "message":
                                                f"its Ray actor died {job.attempts} times"},)))
        else:
            job.future.set_exception(result if isinstance(result, BaseException)
                                     else TypeError(f"unexpected answer {type(result).__name__}"))

    def _shutdown_ray(self) -> None:
        import ray

        live = [a for a in self._actors if a.alive and a.ready]
        try:  # the actors' pools close cleanly first; a dead or stuck one is killed below all the same
            ray.get([a.handle.close.remote() for a in live], timeout=30)
        except Exception:
            pass
        for actor in self._actors:
            if actor.alive:
                try:
                    ray.kill(actor.handle, no_restart=True)
                except Exception:
                    pass
                actor.alive = False
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()


def _notify(events: queue.SimpleQueue, ref: Any, result: Any) -> None:
    """Ray's completion callback (on Ray's thread): only hands the result to the dispatcher."""
    events.put(("done", (ref, result)))
