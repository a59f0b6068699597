"""The trusted side's link to a candidate child: requests sent, every answer validated as plain data.

A candidate that breaks the protocol, dies or runs out of time surfaces as a `CandidateFault` with the status
to report.
"""

from __future__ import annotations

import keyword
import signal
import time
from typing import Any

from next_jax.execution import plain
from next_jax.execution import verdict as v
from next_jax.execution.channel import ChannelClosed, ChannelTimeout, FrameTooLarge
from next_jax.execution.sandbox import Child, SpawnConfig


class CandidateFault(Exception):
    """The candidate broke the protocol, died, or ran out of time; carries the status to report."""

    def __init__(self, status: str, info: dict) -> None:
        super().__init__(status)
        self.status, self.info = status, info
        self.too_large = False  # the answer was larger than a channel frame
        self.results: list[dict] = []  # the tests the judge finished before the fault


def _short(text: Any, limit: int) -> str:
    return text[:limit] if isinstance(text, str) else ""


def _error(info: Any) -> dict:
    """Sanitise an error record coming from an untrusted child."""
    if not isinstance(info, dict):
        return {"type": "ProtocolError", "message": "malformed error record"}
    line = info.get("line")
    return {"type": _short(info.get("type"), 100) or "Exception", "message": _short(info.get("message"), 2000),
            "line": line if type(line) is int else None}


def _status_of_error(info: dict) -> str:
    return v.MEMORY if info.get("type") == "MemoryError" else v.RUNTIME_ERROR


def _death(child: Child, limits_cpu: int, oom: Any = None) -> CandidateFault:
    """Classify a child that stopped answering: CPU limit -> timeout, cgroup OOM kill -> memory, else a crash."""
    report = child.wait_exit()
    if oom is not None and oom():
        return CandidateFault(v.MEMORY, {"type": "MemoryError", "message": "killed by the memory limit"})
    code = report.get("exit")
    cpu = report.get("cpu") or 0.0
    if code is not None and code < 0 and (cpu >= limits_cpu - 0.5 or -code == signal.SIGXCPU):
        return CandidateFault(v.TIMEOUT, {"type": "Timeout", "message": f"CPU limit ({limits_cpu}s) exceeded"})
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        return CandidateFault(v.RUNTIME_ERROR, {"type": "Crashed", "message": f"killed by {name}"})
    return CandidateFault(v.RUNTIME_ERROR, {"type": "Exited", "message": f"process exited with code {code}"})


class CandidateLink:
    """Requests to the candidate child, each answer validated as plain data."""

    def __init__(self, child: Child, deadline: float, config: SpawnConfig, cpu_seconds: int | None = None) -> None:
        self.child, self.deadline = child, deadline
        self.cpu_limit = config.limits.cpu_seconds if cpu_seconds is None else cpu_seconds
        group = config.cgroup
        before = group.oom_kills() if group else 0
        self.oom_killed = (lambda: group.oom_kills() > before) if group else None

    def ask(self, request: dict) -> dict:
        self._send(request)
        return self._receive()

    def _send(self, request: dict) -> None:
        try:
            self.child.channel.send(request)
        except (ChannelClosed, OSError):
            raise _death(self.child, self.cpu_limit, self.oom_killed) from None

    def _receive(self, until: float | None = None) -> dict:
        """The next answer. With ``until`` before the deadline, a ``ChannelTimeout`` at ``until`` means only that
        the answer is not there yet (nothing is consumed: it can be read later)."""
        try:
            answer = self.child.channel.recv(self.deadline if until is None else min(until, self.deadline))
        except ChannelTimeout:
            if until is not None and time.monotonic() < self.deadline:
                raise
            raise CandidateFault(v.TIMEOUT, {"type": "Timeout", "message": "wall-clock limit exceeded"}) from None
        except (ChannelClosed, OSError):
            raise _death(self.child, self.cpu_limit, self.oom_killed) from None
        except (FrameTooLarge, ValueError) as e:
            fault = CandidateFault(v.RUNTIME_ERROR, {"type": "InvalidResult", "message": str(e)})
            fault.too_large = isinstance(e, FrameTooLarge)
            raise fault from None
        if not isinstance(answer, dict):
            raise CandidateFault(v.RUNTIME_ERROR, {"type": "InvalidResult", "message": "not an object"})
        return answer

    def value_answer(self, request: dict) -> dict:
        """A call/getattr/setattr answer, re-built from validated parts only."""
        return self._checked(self.ask(request))

    def send_all(self, requests: list[dict]) -> None:
        """Send requests ahead of their answers, which are then read in order (``next_answer``, ``collect``).

        The requests must be small enough together to sit in the socket unread (``prefetch.MAX_PLAN_BYTES``).
        """
        for request in requests:
            self._send(request)

    def next_answer(self) -> dict:
        """The validated answer to the oldest request sent ahead and not yet read."""
        return self._checked(self._receive())

    def collect(self, count: int, patience: float) -> tuple[list[dict], CandidateFault | None]:
        """Up to ``count`` answers to requests sent ahead, while each comes within ``patience`` seconds of the
        previous one; stops at the first fault. Answers not read yet stay in the channel for ``next_answer``."""
        answers: list[dict] = []
        try:
            while len(answers) < count:
                try:
                    answers.append(self._checked(self._receive(time.monotonic() + patience)))
                except ChannelTimeout:
                    break
        except CandidateFault as fault:
            return answers, fault
        return answers, None

    @staticmethod
    def _checked(answer: dict) -> dict:
        if "raise" in answer:
            return {"raise": _error(answer["raise"])}
        try:
            plain.decode(answer["value"], lambda ident, name: None)
        except (KeyError, plain.PlainError) as e:
            raise CandidateFault(v.RUNTIME_ERROR, {"type": "InvalidResult", "message": str(e)}) from None
        return {"value": answer["value"]}


def _validated_names(answer: dict) -> dict:
    names = answer.get("names")
    if not isinstance(names, dict):
        raise CandidateFault(v.RUNTIME_ERROR, {"type": "InvalidResult", "message": "malformed load answer"})
    clean = {}
    for name, entry in names.items():
        if not (isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)):
            continue
        if entry == ["callable"]:
            clean[name] = entry
        elif (isinstance(entry, list) and len(entry) == 2 and entry[0] == "module" and isinstance(entry[1], str)
              and all(part.isidentifier() for part in entry[1].split("."))):
            clean[name] = entry
        elif isinstance(entry, list) and len(entry) == 2 and entry[0] == "value":
            try:
                plain.decode(entry[1], lambda ident, type_name: None)
            except plain.PlainError:
                continue
            clean[name] = entry
    return clean
