"""Records of the verification pool: what goes in (Candidate) and what comes out (Verdict)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

PASS = "pass"
FAIL = "fail"
TIMEOUT = "timeout"
MEMORY = "memory"
RUNTIME_ERROR = "runtime_error"
SYNTAX_ERROR = "syntax_error"
SANDBOX_ERROR = "sandbox_error"
INVALID_RECORD = "invalid_record"

MAX_TIMEOUT_S = 86_400.0

STATUSES = (PASS, FAIL, TIMEOUT, MEMORY, RUNTIME_ERROR, SYNTAX_ERROR, SANDBOX_ERROR, INVALID_RECORD)


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A program to judge.

    ``tests`` are trusted test statements (MBPP style ``assert f(1) == 2``, or any test code, e.g. a HumanEval
    ``def check(candidate): ...`` followed by ``check(f)``); ``setup`` is the dataset's trusted set-up code. Test and
    set-up code run only on the trusted side; names the program defines are reachable from them through proxies.
    A program may not shadow builtins or standard modules the tests use (a ``sorted`` that returns the expected
    list would pass ``assert sorted(f(x)) == [...]``), except for ``entry_point``, the function under test; when it
    is empty the pool infers it from the first test. ``timeout``: this candidate's wall-clock limit in seconds
    (its CPU limit follows it, rounded up); None takes the pool's default. Problems with a reference solution get
    theirs from the reference's measured time (``next_jax.execution.time_limits``).
    """

    id: str
    code: str
    tests: tuple[str, ...]
    setup: str = ""
    entry_point: str = ""
    timeout: float | None = None

    @classmethod
    def from_json(cls, record: Any) -> Candidate:
        """Build from an input record; raises ValueError with a readable reason on a malformed one."""
        if not isinstance(record, dict):
            raise ValueError("record is not a JSON object")
        ident = record.get("id", record.get("task_id"))
        if ident is None:
            raise ValueError("record has no 'id'")
        code, tests, setup = record.get("code"), record.get("tests"), record.get("setup") or ""
        entry_point = record.get("entry_point") or ""
        if not isinstance(entry_point, str):
            raise ValueError("'entry_point' must be a string")
        if not isinstance(code, str):
            raise ValueError("'code' must be a string")
        if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
            raise ValueError("'tests' must be a list of strings")
        if not isinstance(setup, str):
            raise ValueError("'setup' must be a string")
        timeout = record.get("timeout")
        if timeout is not None and not valid_timeout(timeout):
            raise ValueError("'timeout' must be a positive number of seconds")
        return cls(str(ident), code, tuple(tests), setup, entry_point,
                   None if timeout is None else float(timeout))


def valid_timeout(value: Any) -> bool:
    """A usable time limit: a finite positive number (not a bool), at most a day."""
    return type(value) in (int, float) and math.isfinite(value) and 0 < value <= MAX_TIMEOUT_S


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The pool's decision on one candidate.

    ``details`` holds per-test records (``{"test": i, "ok": bool, ...}``) when requested, and for a non-passing
    candidate always the first failing test (expected vs got for a comparison) or the error (type, message).

    ``early_stop``: the verdict was decided at a failing test (or a fault: timeout, crash) before the last test,
    and the tests after it were not run, so ``passed`` counts the tests that passed before it. The pool stops at
    the first failing test unless asked for ``all_tests``. False when every test ran, or none could (the
    program did not load). ``seconds``: wall time of the run in the sandbox (load and tests, not the process
    start); a measurement, so it is neither compared nor written to JSON.
    """

    id: str
    status: str
    passed: int
    total: int
    details: tuple[dict, ...] = ()
    early_stop: bool = False
    seconds: float | None = dataclasses.field(default=None, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == PASS

    def to_json(self) -> dict:
        return {"id": self.id, "status": self.status, "passed": self.passed, "total": self.total,
                "details": list(self.details), "early_stop": self.early_stop}

    @classmethod
    def from_json(cls, d: dict) -> Verdict:
        """Reads records written before ``early_stop`` existed too (as False)."""
        return cls(str(d["id"]), d["status"], int(d["passed"]), int(d["total"]), tuple(d.get("details", ())),
                   bool(d.get("early_stop", False)))
