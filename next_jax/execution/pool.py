"""The verification pool: batched, parallel, sandboxed judging of candidate programs.

Each worker slot owns one zygote and two unprivileged uids (candidate, judge), so children of different slots
can never signal or read each other. A slot handles one candidate at a time; ``workers`` slots run in parallel.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import queue
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from next_jax.execution import plain, session
from next_jax.execution import verdict as v
from next_jax.execution.channel import ChannelClosed, ChannelTimeout
from next_jax.execution.isolation import Limits
from next_jax.execution.sandbox import SandboxError, SpawnConfig, Zygote
from next_jax.execution.verdict import Candidate, Verdict

log = logging.getLogger(__name__)

MAX_CODE_BYTES = 1 << 20


class _Slot:
    def __init__(self, index: int, uid_base: int, limits: Limits, judge_limits: Limits) -> None:
        self.index = index
        self.zygote = Zygote()
        uid = uid_base + 2 * index
        self.candidate_cfg = SpawnConfig(limits, uid, uid)
        self.judge_cfg = SpawnConfig(judge_limits, uid + 1, uid + 1)

    def ensure_alive(self) -> None:
        if not self.zygote.alive:
            log.warning("zygote of slot %d died; restarting", self.index)
            self.zygote.close()
            self.zygote = Zygote()

    def close(self) -> None:
        self.zygote.close()


class VerificationPool:
    """Runs candidates against trusted tests in confined processes.

    ``timeout`` is the wall-clock budget of one candidate (all its tests); its CPU limit is the same, rounded up.
    """

    def __init__(self, workers: int = 2, timeout: float = 10.0, memory_bytes: int = 2 << 30,
                 uid_base: int = 64000) -> None:
        self.timeout = float(timeout)
        cpu = max(1, math.ceil(self.timeout))
        limits = Limits(cpu_seconds=cpu, memory_bytes=memory_bytes)
        judge_limits = Limits(cpu_seconds=cpu + 1, memory_bytes=memory_bytes)
        with concurrent.futures.ThreadPoolExecutor(workers) as starter:  # zygotes start in parallel
            slots = list(starter.map(lambda i: _Slot(i, uid_base, limits, judge_limits), range(workers)))
        self._free: queue.SimpleQueue[_Slot] = queue.SimpleQueue()
        for slot in slots:
            self._free.put(slot)
        self._slots = slots
        self._executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="verify")
        self._closed = threading.Event()
        caps = slots[0].zygote.capabilities
        self.isolation = caps.get("capabilities", "")
        log.info("verification pool: %d workers, isolation in force: %s", workers, self.isolation)

    # -- verification -------------------------------------------------------------------------------------
    def submit(self, candidate: Candidate, details: bool = False) -> concurrent.futures.Future[Verdict]:
        if self._closed.is_set():
            raise RuntimeError("pool is closed")
        return self._executor.submit(self._verify_one, candidate, details)

    def verify(self, candidates: Iterable[Candidate], details: bool = False) -> list[Verdict]:
        """Verdicts in input order."""
        futures = [self.submit(c, details) for c in candidates]
        return [f.result() for f in futures]

    def _verify_one(self, candidate: Candidate, details: bool) -> Verdict:
        problem = _check_candidate(candidate)
        if problem:
            return Verdict(str(candidate.id), v.INVALID_RECORD, 0, len(candidate.tests or ()),
                           ({"type": "InvalidRecord", "message": problem},))
        with self._slot() as slot:
            return session.run_candidate(slot.zygote, candidate, slot.candidate_cfg, slot.judge_cfg,
                                         self.timeout, details)

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

        Returns one ``{"value": plain}`` or ``{"exception": {type, message, line}}`` per call.
        """
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
        with self._slot() as slot:
            deadline = _deadline(self.timeout)
            with slot.zygote.spawn("candidate", slot.candidate_cfg) as child:
                answers = []
                try:
                    for request in requests:
                        child.channel.send(request)
                        answers.append(child.channel.recv(deadline))
                except ChannelTimeout:
                    raise TimeoutError("sandboxed run exceeded its time limit") from None
                except ChannelClosed:
                    raise RuntimeError(f"sandboxed run died: {child.wait_exit()}") from None
                return answers

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


def _deadline(timeout: float) -> float:
    return time.monotonic() + timeout


def _check_candidate(candidate: Candidate) -> str | None:
    if not isinstance(candidate.code, str):
        return "'code' must be a string"
    if len(candidate.code.encode("utf-8", "surrogatepass")) > MAX_CODE_BYTES:
        return f"'code' is larger than {MAX_CODE_BYTES} bytes"
    if not candidate.tests:
        return "no tests"
    if not all(isinstance(t, str) for t in candidate.tests) or not isinstance(candidate.setup, str):
        return "'tests' and 'setup' must be strings"
    return None
