"""The verification pool: batched, parallel, sandboxed judging of candidate programs.

Each worker slot owns one zygote and two unprivileged uids (candidate, judge), so children of different slots
can never signal or read each other. A slot handles one candidate at a time; ``workers`` slots run in parallel.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import hmac
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from next_jax.execution import plain, session, uid_block
from next_jax.execution import verdict as v
from next_jax.execution.cgroups import SlotCgroup
from next_jax.execution.channel import FrameTooLarge
from next_jax.execution.isolation import Limits
from next_jax.execution.rootfs import DEFAULT_PACKAGES
from next_jax.execution.sandbox import Child, SandboxError, SpawnConfig, Zygote
from next_jax.execution.stream import Cancellation, VerdictStream
from next_jax.execution.verdict import Candidate, Verdict

log = logging.getLogger(__name__)

MAX_CODE_BYTES = 1 << 20


class _Slot:
    """One worker: a zygote, and per role an unprivileged uid and a cgroup bounding all its processes."""

    def __init__(self, index: int, uid_base: int, limits: Limits, judge_limits: Limits,
                 packages: tuple[str, ...], namespaces: tuple[str, ...] | None) -> None:
        self.index, self.packages, self.namespaces = index, packages, namespaces
        self.zygote = Zygote(packages, namespaces=namespaces)
        self.spares = "pid" in self.zygote.capabilities.get("namespaces", [])
        uid = uid_base + 2 * index
        self.cgroups = [SlotCgroup(f"next-jax-{os.getpid()}-{u}", lim.memory_bytes, lim.processes)
                        for u, lim in ((uid, limits), (uid + 1, judge_limits))]
        self.candidate_cfg = SpawnConfig(limits, uid, uid, cgroup=_active(self.cgroups[0]))
        self.judges = session.JudgeHost(lambda: self.zygote,
                                        SpawnConfig(judge_limits, uid + 1, uid + 1, cgroup=_active(self.cgroups[1])))

        self._spawner = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"spare-{index}")
        self._spare: concurrent.futures.Future | None = None

    def fresh_candidate(self, spare: bool = True) -> Child:
        """A never-used confined child; with ``spare``, the next one is forked in the background meanwhile.

        No spares without a pid namespace: there, a finished candidate's leftovers are swept by uid, which would
        take a waiting spare (same uid) with them.
        """
        waiting, self._spare = self._spare, None
        child = None
        if waiting is not None:
            try:
                child = waiting.result()
            except SandboxError:
                child = None
        if child is None:
            child = self.zygote.spawn("candidate", self.candidate_cfg)
        if spare and self.spares:
            self._spare = self._spawner.submit(self.zygote.spawn, "candidate", self.candidate_cfg)
        return child

    def config_for(self, cpu_seconds: int) -> SpawnConfig:
        """The candidate configuration for a time limit of ``cpu_seconds``: the slot's own when it allows that
        much (the child lowers its CPU limit itself before loading the program), else one with a higher limit."""
        if cpu_seconds <= self.candidate_cfg.limits.cpu_seconds:
            return self.candidate_cfg
        return dataclasses.replace(self.candidate_cfg,
                                   limits=dataclasses.replace(self.candidate_cfg.limits, cpu_seconds=cpu_seconds))

    def drop_spare(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            try:
                spare.result().close_async()
            except SandboxError:
                pass

    def ensure_alive(self) -> None:
        if not self.zygote.alive:
            log.warning("zygote of slot %d died; restarting", self.index)
            self.judges.child = None  # it died with its zygote
            self.drop_spare()
            self.zygote.close()
            self.zygote = Zygote(self.packages, namespaces=self.namespaces)

    def close(self) -> None:
        self.drop_spare()
        self._spawner.shutdown()
        self.judges.discard()
        self.zygote.close()
        for group in self.cgroups:
            group.close()


def _active(group: SlotCgroup) -> SlotCgroup | None:
    return group if group.active else None


class VerificationPool:
    """Runs candidates against trusted tests in confined processes.

    ``timeout`` is the default wall-clock budget of one candidate (all its tests; a ``Candidate.timeout`` overrides
    it); its CPU limit is the same, rounded up. A candidate's verdict is decided at its first failing test unless
    ``all_tests`` is asked for.
    ``memory_bytes`` bounds each process's address space and (with cgroups) the sum over a child's processes.
    ``uid_base``: first of the ``2 * workers`` sandbox uids; by default a free block is reserved with a lock file,
    so concurrent pools on one host never share uids. ``packages``: third-party packages children may import.
    ``judge_secret`` keys the judge's random seed (HumanEval tests draw random inputs): the candidate must not be
    able to replay the judge's stream; by default a per-host secret is created once under ``~/.cache/next-jax``,
    so verdicts stay deterministic on one machine. ``namespaces``: the Linux namespaces children get, of
    mount/uts/ipc/pid/net (default: every one the kernel allows); a subset serves kernels where one misbehaves,
    and tests of the degraded modes.
    """

    def __init__(self, workers: int = 2, timeout: float = 10.0, memory_bytes: int = 2 << 30,
                 uid_base: int | None = None, packages: tuple[str, ...] = DEFAULT_PACKAGES,
                 judge_secret: bytes | None = None, namespaces: tuple[str, ...] | None = None) -> None:
        self.timeout = float(timeout)
        cpu = max(1, math.ceil(self.timeout))
        limits = Limits(cpu_seconds=cpu, memory_bytes=memory_bytes)
        # The judge's hard CPU limit spans its life (its per-run budget is a soft limit it sets each run).
        judge_limits = Limits(cpu_seconds=(cpu + 1) * session.JUDGE_MAX_RUNS, memory_bytes=memory_bytes)
        self._uid_lock = None
        if uid_base is None:
            uid_base, self._uid_lock = uid_block.reserve(2 * workers)
        self.judge_secret = judge_secret if judge_secret is not None else _host_secret()
        with concurrent.futures.ThreadPoolExecutor(workers) as starter:  # zygotes start in parallel
            slots = list(starter.map(lambda i: _Slot(i, uid_base, limits, judge_limits, tuple(packages), namespaces),
                                     range(workers)))
        self._free: queue.SimpleQueue[_Slot] = queue.SimpleQueue()
        for slot in slots:
            self._free.put(slot)
        self._slots = slots
        self._executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="verify")
        self._closed = threading.Event()
        self._pending, self._pending_lock = 0, threading.Lock()
        caps = slots[0].zygote.capabilities
        self.isolation = caps.get("capabilities", "")
        log.info("verification pool: %d workers, isolation in force: %s", workers, self.isolation)

    # -- verification -------------------------------------------------------------------------------------
    def submit(self, candidate: Candidate, details: bool = False, all_tests: bool = False,
               cancellation: Cancellation | None = None) -> concurrent.futures.Future[Verdict]:
        """Verify ``candidate`` in the background. By default its verdict is decided at its first failing test
        (``Verdict.early_stop``); ``all_tests`` runs every test (per-test counts). ``cancellation``: a handle
        whose ``cancel()`` ends the run early (its children killed; the verdict is then meaningless)."""
        if self._closed.is_set():
            raise RuntimeError("pool is closed")
        with self._pending_lock:
            self._pending += 1
        return self._executor.submit(self._verify_one, candidate, details, all_tests, cancellation)

    def verify(self, candidates: Iterable[Candidate], details: bool = False, all_tests: bool = False) -> list[Verdict]:
        """Verdicts in input order."""
        futures = [self.submit(c, details, all_tests) for c in candidates]
        return [f.result() for f in futures]

    def stream(self, max_in_flight: int | None = None, details: bool = False,
               all_tests: bool = False) -> VerdictStream:
        """A context manager to submit candidates as they come and collect verdicts as they complete, with at most
        ``max_in_flight`` (default: twice the workers) being verified at once; see ``stream.VerdictStream``."""
        if self._closed.is_set():
            raise RuntimeError("pool is closed")
        return VerdictStream(self, max_in_flight or 2 * len(self._slots), details, all_tests)

    def timeout_of(self, candidate: Candidate) -> float:
        """The wall-clock limit a candidate gets: its own, else the pool's."""
        return self.timeout if candidate.timeout is None else float(candidate.timeout)

    def _verify_one(self, candidate: Candidate, details: bool, all_tests: bool = False,
                    cancellation: Cancellation | None = None) -> Verdict:
        with self._pending_lock:
            self._pending -= 1
            more = self._pending > 0
        problem = _check_candidate(candidate)
        if problem:
            return Verdict(str(candidate.id), v.INVALID_RECORD, 0, len(candidate.tests or ()),
                           ({"type": "InvalidRecord", "message": problem},))
        if cancellation is not None and cancellation.cancelled:
            return _cancelled(candidate)
        timeout = self.timeout_of(candidate)
        seen: list[Child] = []

        def watch(child: Child) -> None:
            seen.append(child)
            if cancellation is not None:
                cancellation.watch(child)

        with self._slot() as slot:
            config = slot.config_for(max(1, math.ceil(timeout)))
            if config is slot.candidate_cfg:  # a spare is forked in the background only while more candidates wait
                spawn = lambda: slot.fresh_candidate(spare=more)  # noqa: E731
            else:  # a limit above the slot's: a child started with it
                spawn = lambda: slot.zygote.spawn("candidate", config)  # noqa: E731
            try:
                return session.run_candidate(spawn, slot.judges, candidate, config, timeout,
                                             _judge_seed(self.judge_secret, candidate), details,
                                             fail_fast=not all_tests, watch=watch)
            except Exception as e:  # a bug on the trusted side must cost one verdict, not the caller's whole batch
                log.exception("verification of %r failed on the trusted side", candidate.id)
                return Verdict(str(candidate.id), v.SANDBOX_ERROR, 0, len(candidate.tests or ()),
                               ({"type": type(e).__name__, "message": str(e)[:500]},))
            finally:
                if cancellation is not None:
                    cancellation.forget(seen)
                with self._pending_lock:
                    idle = self._pending == 0
                if idle:
                    slot.drop_spare()

    # -- trusted helpers run in the sandbox --------------------------------------------------------------
    def trace(self, code: str, call: str, **budgets: Any) -> Any:
        """Trace ``call`` on ``code`` inside a confined child; returns a tracer ``Trace``."""
        from next_jax.execution.tracer import Trace

        answer = self._ask_once([{"op": "trace", "code": code, "call": call, "budgets": budgets}])[0]
        if "raise" in answer:
            info = answer["raise"]
            if info.get("type") == "SyntaxError":
                raise SyntaxError(info.get("message"))
            raise RuntimeError(f"tracing failed: {info.get('type')}: {info.get('message')}")
        return Trace.from_json(answer["trace"])

    def evaluate(self, code: str, calls: Sequence[str], setup: str = "") -> list[dict]:
        """Run (trusted, reference) ``code`` on call expressions in a confined child.

        Returns one ``{"value": plain}`` or ``{"exception": {type, message, line}}`` per call. A batch whose
        answers together exceed one channel frame is split in halves (each half run afresh); a single call whose
        answer alone exceeds it raises ``FrameTooLarge``.
        """
        try:
            return self._evaluate(code, list(calls), setup)
        except FrameTooLarge:
            if len(calls) <= 1:
                raise
            mid = len(calls) // 2
            return self.evaluate(code, calls[:mid], setup) + self.evaluate(code, calls[mid:], setup)

    def _evaluate(self, code: str, calls: list[str], setup: str) -> list[dict]:
        source = f"{setup}\n{code}" if setup else code
        load, answer = self._ask_once([{"op": "load", "code": source}, {"op": "eval", "calls": list(calls)}])
        if "error" in load:
            raise RuntimeError(f"reference program failed to load: {load['error']}")
        out = []
        for item in answer["results"]:
            if "value" in item:
                out.append({"value": plain.decode(item["value"])})
            else:
                out.append({"exception": session._error(item.get("exception"))})
        return out

    def _ask_once(self, requests: list[dict]) -> list[dict]:
        """Send ``requests`` in turn to one fresh confined child; its answers, in order."""
        with self._slot() as slot, slot.zygote.spawn("candidate", slot.candidate_cfg) as child:
            link = session.CandidateLink(child, time.monotonic() + self.timeout, slot.candidate_cfg)
            try:
                return [link.ask(request) for request in requests]
            except session.CandidateFault as fault:
                if fault.status == v.TIMEOUT:
                    raise TimeoutError("sandboxed run exceeded its time limit") from None
                if fault.too_large:
                    raise FrameTooLarge(str(fault.info.get("message"))) from None
                raise RuntimeError(f"sandboxed run failed: {fault.info}") from None

    # -- slots and lifetime -------------------------------------------------------------------------------
    def _slot(self) -> _SlotLease:
        return _SlotLease(self._free)

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._executor.shutdown(wait=True)
        for slot in self._slots:
            slot.close()
        if self._uid_lock is not None:
            self._uid_lock.close()

    def __enter__(self) -> VerificationPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _SlotLease:
    def __init__(self, free: queue.SimpleQueue) -> None:
        self.free = free

    def __enter__(self) -> _Slot:
        self.slot = self.free.get()
        try:
            self.slot.ensure_alive()
        except SandboxError:
            self.free.put(self.slot)
            raise
        return self.slot

    def __exit__(self, *exc: Any) -> None:
        self.free.put(self.slot)


def _judge_seed(secret: bytes, candidate: Candidate) -> int:
    digest = hmac.new(secret, "\x00".join((candidate.setup, *candidate.tests)).encode("utf-8", "surrogatepass"),
                      hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big")


def _host_secret() -> bytes:
    """A random key created once per host user; unreadable from inside the sandbox (outside its root)."""
    path = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "next-jax",
                        "judge-secret")
    try:
        with open(path, "rb") as f:
            secret = f.read()
        if len(secret) >= 16:
            return secret
    except OSError:
        pass
    secret = os.urandom(32)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secret)
    except OSError:
        log.warning("cannot store the judge secret at %s; verdicts of random tests vary between pools", path)
    return secret


def _cancelled(candidate: Candidate) -> Verdict:
    return Verdict(str(candidate.id), v.SANDBOX_ERROR, 0, len(candidate.tests or ()),
                   ({"type": "Cancelled", "message": "cancelled before it ran"},))


def _check_candidate(candidate: Candidate) -> str | None:
    if candidate.timeout is not None and not v.valid_timeout(candidate.timeout):
        return f"'timeout' must be a positive number of seconds up to {v.MAX_TIMEOUT_S:g}"
    if not isinstance(candidate.code, str):
        return "'code' must be a string"
    if len(candidate.code.encode("utf-8", "surrogatepass")) > MAX_CODE_BYTES:
        return f"'code' is larger than {MAX_CODE_BYTES} bytes"
    if not candidate.tests:
        return "no tests"
    if not all(isinstance(t, str) for t in candidate.tests) or not isinstance(candidate.setup, str):
        return "'tests' and 'setup' must be strings"
    return None
