"""The filter stage: keep passing samples as fine-tuning records (exact prompt + rationale and fix).

Gin-controlled: dedupe identical fixes of one problem (by normalised code), a cap per problem, whether
iterations accumulate (the union over iterations <= t, as in ReST/STaR) or keep only the latest, and an optional
check that a passing sample's rationale agrees with its own fix (`RATIONALE_CHECKS`).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import gin

from next_jax.data.mutation import normalized
from next_jax.data.prompts import format_target
from next_jax.selftrain.records import Sample

_QUOTED = re.compile(r"`([^`\n]+)`")


def quotes_the_fix(rationale: str, buggy: str, fixed: str) -> bool:
    """Whether `rationale` states the fix it comes with: every line the fix changes is quoted in it (in
    backticks, up to surrounding spaces): the new text of each replaced or inserted line, the old text of each
    deleted one. A fix that changes nothing fails.

    Why: a passing fix only proves the code. A small model sampled at temperature often writes a garbled
    rationale before a right fix, and fine-tuning on those teaches it to garble, which then derails the code
    too (seen on the embedded default: dev fix rate halved after one iteration on one seed)."""
    quoted = {q.strip() for q in _QUOTED.findall(rationale or "")}
    before, after = buggy.splitlines(), fixed.splitlines()
    needed = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes():
        if tag != "equal":
            lines = after[j1:j2] if tag in ("replace", "insert") else before[i1:i2]
            needed += [line.strip() for line in lines if line.strip()]
    return bool(needed) and all(line in quoted for line in needed)


# name -> check(rationale, buggy program, fixed program): whether a passing sample's rationale may be kept.
RATIONALE_CHECKS: dict[str, Callable[[str, str, str], bool]] = {"quotes_the_fix": quotes_the_fix}


@gin.configurable(module="next_jax.selftrain")
@dataclasses.dataclass(frozen=True)
class FilterSettings:
    dedupe: bool = True
    max_per_problem: int | None = 4
    accumulate: bool = True
    # A key of RATIONALE_CHECKS, or None: every passing sample is kept whatever its rationale says (paper).
    rationale_check: str | None = None

    def __post_init__(self) -> None:
        if self.rationale_check is not None and self.rationale_check not in RATIONALE_CHECKS:
            raise ValueError(f"unknown FilterSettings.rationale_check {self.rationale_check!r}; "
                             f"one of {sorted(RATIONALE_CHECKS)} or None")


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
    originals: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Fine-tuning records of the passing samples in `joined` (any number of iterations), deterministic
    order: by example id, then iteration, then sample index. `prompts[(iteration, example_id)]` is the exact
    prompt the sample was drawn with. `buggy[example_id]`, where given (edit answers), is the buggy program:
    the target then writes the fix as line edits of it where it can. `originals[example_id]` is each problem's
    buggy program for `settings.rationale_check`; a sample whose problem has none there is not kept."""
    buggy = buggy or {}
    check = RATIONALE_CHECKS[settings.rationale_check] if settings.rationale_check else None
    passing = sorted(
        (s for s, v in joined if v["status"] == "pass"), key=lambda s: (s.example_id, s.iteration, s.index)
    )
    if check is not None:
        originals = originals or {}
        passing = [s for s in passing
                   if s.example_id in originals and check(s.rationale or "", originals[s.example_id], s.code)]
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
