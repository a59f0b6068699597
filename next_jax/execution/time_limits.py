"""Per-problem time limits from the reference solution's measured time (EvalPlus's rule).

A problem with a reference solution gets ``max(floor, factor x the reference's time)``; one without, a fixed
limit. The reference's time is measured once per problem, in the pool (sandbox overhead included, every test
run), and kept in a small JSON cache next to the data so later runs only read it:

    {"format": "next-jax/reference-times/1",
     "problems": {"<problem id>": {"seconds": 0.012, "status": "pass", "digest": "<sha256 of code+tests>"}}}

A cached entry is reused only while its digest matches the problem's reference, tests and set-up. A reference
that did not run to a verdict on its tests (timeout, crash, sandbox error) has ``seconds: null`` and gets the
fixed limit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from next_jax.execution.verdict import FAIL, PASS, Candidate

FORMAT = "next-jax/reference-times/1"
# EvalPlus (evaluate.py): min_time_limit 1 s, gt_time_limit_factor 4.
DEFAULT_FLOOR_S = 1.0
DEFAULT_FACTOR = 4.0


@dataclasses.dataclass(frozen=True)
class TimeLimitPolicy:
    """``limit = max(floor, factor * reference seconds)``; ``default`` where there is no usable reference."""

    floor: float = DEFAULT_FLOOR_S
    factor: float = DEFAULT_FACTOR
    default: float = 10.0

    def limit(self, timing: ReferenceTime | None) -> float:
        if timing is None or timing.seconds is None:
            return self.default
        return max(self.floor, self.factor * timing.seconds)


@dataclasses.dataclass(frozen=True)
class ReferenceTime:
    seconds: float | None
    status: str
    digest: str


def digest(candidate: Candidate) -> str:
    """What a measurement depends on: the reference program, its tests and set-up."""
    text = "\x00".join((candidate.code, candidate.setup, *candidate.tests))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def measure(pool: Any, references: Iterable[Candidate], measure_timeout: float = 60.0) -> dict[str, ReferenceTime]:
    """Time each reference (keyed by its ``id``: the problem id) in the pool on all of its tests.

    Each runs with a generous ``measure_timeout`` so a slow reference is measured rather than cut off."""
    candidates = [dataclasses.replace(c, timeout=measure_timeout) for c in references]
    verdicts = pool.verify(candidates, all_tests=True)
    out = {}
    for candidate, verdict in zip(candidates, verdicts, strict=True):
        complete = verdict.status in (PASS, FAIL) and verdict.seconds is not None
        seconds = round(verdict.seconds, 6) if complete else None  # as the cache stores it
        out[candidate.id] = ReferenceTime(seconds, verdict.status, digest(candidate))
    return out


def load(path: str | os.PathLike) -> dict[str, ReferenceTime]:
    """The cache at ``path``; empty when the file does not exist."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a reference-time cache ({FORMAT})")
    return {str(k): ReferenceTime(v.get("seconds"), str(v.get("status", "")), str(v.get("digest", "")))
            for k, v in data.get("problems", {}).items()}


def save(path: str | os.PathLike, times: Mapping[str, ReferenceTime]) -> None:
    """Write the cache atomically (a temporary file renamed over it)."""
    problems = {k: {"seconds": None if t.seconds is None else round(t.seconds, 6), "status": t.status,
                    "digest": t.digest} for k, t in sorted(times.items())}
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "w") as f:
        json.dump({"format": FORMAT, "problems": problems}, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def reference_times(pool: Any, references: Iterable[Candidate], cache: str | os.PathLike | None = None,
                    measure_timeout: float = 60.0) -> dict[str, ReferenceTime]:
    """Measured times of ``references`` (one per problem, ``id`` = problem id), read from ``cache`` where it
    holds a matching entry, measured in ``pool`` otherwise (and then written back to ``cache``)."""
    references = list(references)
    known = load(cache) if cache is not None else {}
    missing = [c for c in references if c.id not in known or known[c.id].digest != digest(c)]
    if missing:
        known.update(measure(pool, missing, measure_timeout))
        if cache is not None:
            save(cache, known)
    return {c.id: known[c.id] for c in references}


def reference_time_limits(pool: Any, references: Iterable[Candidate], floor: float = DEFAULT_FLOOR_S,
                          factor: float = DEFAULT_FACTOR, default: float | None = None,
                          cache: str | os.PathLike | None = None, measure_timeout: float = 60.0) -> dict[str, float]:
    """Problem id -> time limit (seconds) by EvalPlus's rule; ``default`` (the pool's timeout when None) where the
    reference did not run to a verdict."""
    policy = TimeLimitPolicy(floor, factor, pool.timeout if default is None else default)
    return {k: policy.limit(t) for k, t in reference_times(pool, references, cache, measure_timeout).items()}
