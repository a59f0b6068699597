"""One candidate's verification, end to end, on the trusted side.

The dispatcher loads the program into a confined candidate child, starts a confined judge with the trusted tests,
and relays the judge's calls to the candidate, validating every answer as plain data before the judge sees it.
The verdict is built here from what the judge reports; nothing the candidate prints or returns about itself counts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from next_jax.execution import prefetch
from next_jax.execution import verdict as v
from next_jax.execution.candidate_link import (  # the first three also reached as session.X by pool, tests
    CandidateFault,
    CandidateLink,
    _error,
    _status_of_error,
    _validated_names,
)
from next_jax.execution.channel import ChannelClosed, ChannelTimeout
from next_jax.execution.entry_point import infer_entry_point
from next_jax.execution.sandbox import Child, SandboxError, SpawnConfig
from next_jax.execution.verdict import Candidate, Verdict


def run_candidate(spawn: Callable[[], Child], judges: JudgeHost, candidate: Candidate, candidate_cfg: SpawnConfig,
                  timeout: float, judge_seed: int = 0, details: bool = False, fail_fast: bool = True,
                  watch: Callable[[Child], None] | None = None) -> Verdict:
    """Verify one candidate in a fresh child from ``spawn()``; never raises for anything the candidate does.

    ``timeout``: wall-clock seconds from the spawn; the child's CPU limit is lowered to it (rounded up) when the
    spawn configuration allows more. ``fail_fast``: stop at the first test that does not pass. ``watch`` sees
    every child this run uses (candidate and judge), e.g. to kill them when the caller cancels.
    """
    total = len(candidate.tests)
    deadline = time.monotonic() + timeout
    cpu = max(1, math.ceil(timeout))
    results: list[dict] = []
    stdout = ""
    started = None
    try:
        with spawn() as child:
            started = time.monotonic()
            if watch is not None:
                watch(child)
            try:
                link = CandidateLink(child, deadline, candidate_cfg, min(cpu, candidate_cfg.limits.cpu_seconds))
                load = {"op": "load", "code": candidate.code}
                if cpu < candidate_cfg.limits.cpu_seconds:
                    load["cpu_seconds"] = cpu
                loaded = link.ask(load)
                if "error" in loaded:
                    info = _error(loaded["error"])
                    kind = loaded["error"].get("kind") if isinstance(loaded["error"], dict) else None
                    status = v.SYNTAX_ERROR if kind == "syntax" else _status_of_error(info)
                    return Verdict(candidate.id, status, 0, total, ({"stage": "load", **info},),
                                   seconds=time.monotonic() - started)
                names = _validated_names(loaded)
                results = _judge(judges, link, candidate, names, deadline, judge_seed, fail_fast, watch)
            except CandidateFault as fault:
                results = fault.results or results
                if details:
                    child.kill()
                    child.output.collect(timeout=1.0)
                return _verdict(candidate, results, details, fault, child.output.text(), time.monotonic() - started)
            finally:
                child.kill()
            elapsed = time.monotonic() - started
            if details:
                child.output.collect(timeout=1.0)  # the rest of the output arrives as the process dies
            stdout = child.output.text()
    except SandboxError as e:
        return Verdict(candidate.id, v.SANDBOX_ERROR, 0, total, ({"type": "SandboxError", "message": str(e)},))
    return _verdict(candidate, results, details, None, stdout, elapsed)


JUDGE_MAX_RUNS = 500


class JudgeHost:
    """A slot's judge process, kept across candidates and replaced after any run that did not end cleanly.

    Each run asks the judge to allow itself the candidate's CPU limit plus one second more than it used so far
    (a soft limit); the hard limit, set at its start, covers its whole life of ``max_runs`` runs."""

    def __init__(self, zygote_of: Any, config: SpawnConfig, max_runs: int = JUDGE_MAX_RUNS) -> None:
        self.zygote_of, self.config, self.max_runs = zygote_of, config, max_runs
        self.child: Child | None = None
        self.runs = 0

    def acquire(self) -> Child:
        if self.child is None or self.runs >= self.max_runs or self.child.killed:  # killed: by a cancel
            self.discard()
            self.child = self.zygote_of().spawn("judge", self.config)
            self.runs = 0
        self.runs += 1
        return self.child

    def discard(self) -> None:
        if self.child is not None:
            self.child.close()
            self.child = None


_FORWARDED = ("op", "target", "args", "kwargs", "handle", "name", "value")


# After the candidate failed during a prefetch, the judge still gets this long to score the tests before it.
JUDGE_GRACE_S = 2.0
# Answers to calls sent ahead are handed to the judge with the tests while each comes within this long of the
# previous one; the rest are read when the judge asks for them. So a candidate that fails a test and then hangs
# in a later call costs this much, not its whole time limit, when the run stops at the first failing test.
PREFETCH_PATIENCE_S = 0.05


def _judge(judges: JudgeHost, link: CandidateLink, candidate: Candidate, names: dict, deadline: float,
           seed: int, fail_fast: bool = True, watch: Callable[[Child], None] | None = None) -> list[dict]:
    """Run the tests in the confined judge, relaying its calls; returns one result per test completed.

    Where every test is one literal call (``prefetch.plan``), the calls go to the candidate at once and their
    answers to the judge with the tests, which saves two process hops per test; where every test also compares
    that value with a literal, the comparisons are made here, one answer at a time, and the judge is not needed.
    With ``fail_fast`` the run ends at the first test that does not pass: answers to later calls are not waited
    for, and the candidate receives nothing after it (it is killed; it had all its calls before any test ran).
    """
    entry_point = candidate.entry_point or infer_entry_point(candidate)
    planned = prefetch.plan(candidate.tests, candidate.setup, names, entry_point)
    answers: list[dict] = []
    fault: CandidateFault | None = None
    pending = 0  # calls sent ahead whose answers the judge has not had yet
    if planned:
        try:
            link.send_all(planned)
        except CandidateFault as failed:
            fault = failed
        checks = prefetch.local_checks(candidate.tests, planned) if fault is None else None
        if checks is not None:  # every test compares its call's plain value with a literal: decided here
            return _decide_here(link, checks, fail_fast)
        if fault is None:
            answers, fault = link.collect(len(planned), PREFETCH_PATIENCE_S)
            pending = 0 if fault is not None else len(planned) - len(answers)
    if fault is not None:
        deadline = max(deadline, time.monotonic() + JUDGE_GRACE_S)
    results: list[dict] = []
    judge = judges.acquire()
    if watch is not None:
        watch(judge)
    clean = False
    try:
        judge.channel.send({"op": "run", "setup": candidate.setup, "tests": list(candidate.tests), "seed": seed,
                            "names": names, "entry_point": entry_point, "fail_fast": fail_fast,
                            "cpu_seconds": link.cpu_limit + 1,
                            "prefetched": [[r["target"], a] for r, a in zip(planned or (), answers, strict=False)]})
        while True:
            message = judge.channel.recv(deadline)
            finished = message.get("results", [])
            if not (isinstance(finished, list) and all(isinstance(r, dict) for r in finished)):
                raise SandboxError("judge sent malformed results")
            results.extend(finished)
            op = message.get("op")
            if op == "done":
                clean = True
                return results
            if op in ("call", "getattr", "setattr"):
                if fault is not None:  # the call the candidate failed on during the prefetch
                    raise fault
                # Only the request itself goes on: test results (expected values) never reach the candidate.
                request = {key: message[key] for key in _FORWARDED if key in message}
                if pending:  # already sent ahead: it must be the next planned call; its answer is on its way
                    if not prefetch.same_call(request, planned[len(planned) - pending]):
                        raise SandboxError("the judge's calls did not follow the prefetch plan")
                    pending -= 1
                    judge.channel.send(link.next_answer())
                else:
                    judge.channel.send(link.value_answer(request))
            elif op == "prefetch_mismatch":  # the plan missed a call the tests make: never guess a verdict
                raise SandboxError("the judge's calls did not follow the prefetch plan")
            else:
                raise SandboxError(f"judge sent unknown op {op!r}")
    except ChannelTimeout:
        fault = CandidateFault(v.TIMEOUT, {"type": "Timeout", "message": "wall-clock limit exceeded"})
        fault.results = results
        raise fault from None
    except CandidateFault as fault:  # the candidate failed while answering a test's call
        fault.results = results
        raise
    except (ChannelClosed, OSError, ValueError, KeyError) as e:
        raise SandboxError(f"judge failed: {type(e).__name__}: {e}; {judge.output.text()[-500:]}") from None
    finally:
        if not clean:
            judges.discard()


def _decide_here(link: CandidateLink, checks: list[tuple], fail_fast: bool) -> list[dict]:
    """Results of tests that each compare their (sent-ahead) call's value with a literal, one answer at a time."""
    results: list[dict] = []
    for check in checks:
        try:
            answer = link.next_answer()
        except CandidateFault as fault:
            fault.results = results
            raise
        results.append(prefetch.local_result(check, answer))
        if fail_fast and results[-1].get("ok") is not True:
            break
    return results


def _verdict(candidate: Candidate, results: list[dict], details: bool, fault: CandidateFault | None,
             stdout: str, seconds: float | None = None) -> Verdict:
    total = len(candidate.tests)
    passed = sum(1 for r in results if r.get("ok") is True)
    status, first = v.PASS, None
    for index, result in enumerate(results):
        if result.get("ok") is not True:
            first = {"test": index, **result}
            kind = result.get("kind")
            status = _status_of_error(result) if kind == "candidate_error" else v.FAIL
            break
    if first is None and fault is not None:
        status, first = fault.status, {"test": len(results), **fault.info}
    if first is None and len(results) < total:
        status, first = v.SANDBOX_ERROR, {"type": "Incomplete", "message": "judge stopped early"}
    out: list[dict] = []
    if details:
        out = [{"test": i, **r} for i, r in enumerate(results)]
        if fault is not None:
            out.append({"test": len(results), **fault.info})
        out.append({"stdout": stdout})
    elif first is not None:
        out = [first]
    judged = len(results) + (1 if fault is not None else 0)
    return Verdict(candidate.id, status, passed, total, tuple(out), status != v.PASS and judged < total, seconds)
