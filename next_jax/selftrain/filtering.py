"""The filter stage: keep passing samples as fine-tuning records (exact prompt + rationale and fix).

Gin-controlled: dedupe identical fixes of one problem (by normalised code), a cap per problem, and whether
iterations accumulate (the union over iterations <= t, as in ReST/STaR) or keep only the latest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import gin

from next_jax.data.mutation import normalized
from next_jax.data.prompts import format_target
from next_jax.selftrain.records import Sample


@gin.configurable(module="next_jax.selftrain")
@dataclasses.dataclass(frozen=True)
class FilterSettings:
    dedupe: bool = True
    max_per_problem: int | None = 4
    accumulate: bool = True


def _code_key(code: str) -> str:
    try:
        return normalized(code)
    except SyntaxError:  # kept code parsed once; normalisation should too, but never crash a filter on it
        return code


def kept_records(
    joined: Iterable[tuple[Sample, Mapping[str, Any]]],
    prompts: Mapping[tuple[int, str], str],
    settings: FilterSettings,
    buggy: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Fine-tuning records of the passing samples in `joined` (any number of iterations), deterministic
    order: by example id, then iteration, then sample index. `prompts[(iteration, example_id)]` is the exact
    prompt the sample was drawn with. `buggy[example_id]`, where given (edit answers), is the buggy program:
    the target then writes the fix as line edits of it where it can."""
    buggy = buggy or {}
    passing = sorted(
        (s for s, v in joined if v["status"] == "pass"), key=lambda s: (s.example_id, s.iteration, s.index)
    )
    out, seen, per_problem = [], set(), {}
    for s in passing:
        key = (s.example_id, _code_key(s.code))
        if settings.dedupe and key in seen:
            continue
        if settings.max_per_problem is not None and per_problem.get(s.example_id, 0) >= settings.max_per_problem:
            continue
        seen.add(key)
        per_problem[s.example_id] = per_problem.get(s.example_id, 0) + 1
        out.append({
            "id": f"{s.example_id}#{s.iteration}.{s.index}",
            "example_id": s.example_id,
            "iteration": s.iteration,
            "index": s.index,
            "prompt": prompts[(s.iteration, s.example_id)],
            "target": format_target(s.rationale, s.code, buggy.get(s.example_id)),
        })
    return out
