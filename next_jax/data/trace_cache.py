"""A cache of execution traces keyed by (program, call, budgets).

Tracing a buggy program is the costly step of rendering a NExT prompt, and the same (program, test) pair is
rendered once per epoch and per trace format. Traces are stored as their JSON form, in memory and optionally
in an append-only JSON-lines file so later runs and other epochs reuse them.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

# A tracer maps (program source, call expression) to a Trace's JSON dict: the in-process tracer, the
# sandboxed pool's `trace`, or this cache wrapped around either.
TraceFn = Callable[[str, str], dict[str, Any]]


def trace_key(code: str, call: str, budgets: dict[str, int]) -> str:
    """A stable key for one traced call."""
    payload = json.dumps([code, call, sorted(budgets.items())], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


class TraceCache:
    """Memoises a tracer; `path` (optional) persists entries as JSON lines of {"key", "trace"}."""

    def __init__(
        self, tracer: TraceFn, budgets: dict[str, int] | None = None, path: str | Path | None = None
    ):
        self._tracer = tracer
        self._budgets = dict(budgets or {})
        self._path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._mem: dict[str, dict[str, Any]] = {}
        self.hits = 0
        self.misses = 0
        if self._path is not None and self._path.exists():
            with open(self._path, encoding="utf-8") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                        self._mem[rec["key"]] = rec["trace"]
                    except (json.JSONDecodeError, KeyError):
                        continue  # a torn last line from an interrupted run: that trace is recomputed

    def __len__(self) -> int:
        return len(self._mem)

    def __call__(self, code: str, call: str) -> dict[str, Any]:
        key = trace_key(code, call, self._budgets)
        with self._lock:
            hit = self._mem.get(key)
            if hit is not None:
                self.hits += 1
                return hit
        trace = self._tracer(code, call)
        with self._lock:
            self.misses += 1
            self._mem[key] = trace
            if self._path is not None:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                with open(self._path, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"key": key, "trace": trace}, ensure_ascii=False) + "\n")
        return trace
