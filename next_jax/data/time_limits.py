"""Per-problem verification time limits for repair data, from each problem's reference solution.

The rule and the cache format live in `next_jax.execution.time_limits`; this module applies them to
`RepairExample`s (MBPP-R, HeFix+, synthetic: any example with a `reference`) and binds the rule's floor and
factor in gin:

    time_limits.policy.floor = 1.0      # seconds
    time_limits.policy.factor = 4.0     # x the reference's measured time
    time_limits.policy.default = 10.0   # problems without a usable reference

The build (`launch/build_mbpp_r.py`) writes `<dataset dir>/reference_times.json` next to each dataset's JSONL;
`example_time_limits` reads it (measuring only what is missing or changed) and gives problem id -> seconds,
to be set as `Candidate.timeout` on every fix verified for that problem.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import gin

from next_jax.data.example import RepairExample
from next_jax.execution import time_limits
from next_jax.execution.verdict import Candidate

CACHE_NAME = "reference_times.json"


@gin.configurable("time_limits.policy")
def policy(floor: float = time_limits.DEFAULT_FLOOR_S, factor: float = time_limits.DEFAULT_FACTOR,
           default: float = 10.0) -> time_limits.TimeLimitPolicy:
    """The limit rule: ``max(floor, factor x reference seconds)``, ``default`` without a reference."""
    return time_limits.TimeLimitPolicy(floor, factor, default)


def reference_candidates(examples: Iterable[RepairExample]) -> list[Candidate]:
    """One candidate per problem with a reference: the reference on the tests that decide a fix (by problem id;
    the first example of a problem speaks for it)."""
    out: dict[str, Candidate] = {}
    for example in examples:
        if example.reference and example.problem_id not in out:
            out[example.problem_id] = Candidate(example.problem_id, example.reference, example.verdict_tests,
                                                example.setup, example.entry_point)
    return list(out.values())


def measure_reference_times(pool: Any, examples: Iterable[RepairExample], cache: str | os.PathLike,
                            measure_timeout: float = 60.0) -> dict[str, time_limits.ReferenceTime]:
    """Measure (or read from ``cache``) each problem's reference time; writes ``cache``."""
    return time_limits.reference_times(pool, reference_candidates(examples), cache, measure_timeout)


def example_time_limits(pool: Any, examples: Iterable[RepairExample], cache: str | os.PathLike | None = None,
                        rule: time_limits.TimeLimitPolicy | None = None) -> dict[str, float]:
    """Problem id -> time limit for every problem of ``examples`` with a reference (others: the caller's
    fixed limit). ``rule`` defaults to the gin-bound `policy()`."""
    rule = rule or policy()
    times = time_limits.reference_times(pool, reference_candidates(examples), cache)
    return {problem: rule.limit(timing) for problem, timing in times.items()}
