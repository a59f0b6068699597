"""The test-blind floor: how often a random single edit of the buggy program, drawn without looking at any
test, trace or description, passes the problem's tests. A model's dev fix rate means something only above
it (edits are drawn by the same AST operators that inject the synthetic bugs, so this floor is generous)."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from next_jax.data.example import RepairExample
from next_jax.data.fix_check import candidate_for
from next_jax.data.mutation import iter_mutants

if TYPE_CHECKING:
    from next_jax.selftrain.loop import Loop


def blind_edit_floor(
    examples: Sequence[RepairExample],
    metas: Mapping[str, Mapping[str, Any]],
    verify: Callable[[list], list],
    *,
    seed: int,
    draws: int = 4,
    timeouts: Mapping[str, float | None] | None = None,
) -> dict[str, Any]:
    """{"problems", "draws", "fix_rate", "fix_rate_stderr", "any_of_draws"}: the chance that one random edit
    fixes a problem (mean over problems of the share of its `draws` edits that pass; stderr over problems),
    and the share of problems that any of its `draws` edits fixes. `metas[id]` is the problem's verification
    meta (`rendering.verification_meta`); edits are seeded by (seed, example id)."""
    jobs: list[tuple[str, Any]] = []
    for ex in examples:
        rng = random.Random(f"floor:{seed}:{ex.id}")
        for i, mutant in enumerate(itertools.islice(iter_mutants(ex.buggy_code, rng), draws)):
            jobs.append((ex.id, candidate_for(mutant.code, f"{ex.id}#floor{i}", metas[ex.id],
                                              (timeouts or {}).get(ex.id))))
    verdicts = verify([c for _, c in jobs]) if jobs else []
    passed: dict[str, list[bool]] = {ex.id: [] for ex in examples}
    for (ident, _), v in zip(jobs, verdicts, strict=True):
        passed[ident].append(v.status == "pass")
    # a program with fewer than `draws` distinct edits counts its missing draws as failures
    shares = [sum(flags) / draws for flags in passed.values()]
    rate = statistics.fmean(shares) if shares else 0.0
    stderr = statistics.stdev(shares) / math.sqrt(len(shares)) if len(shares) > 1 else 0.0
    any_rate = sum(any(flags) for flags in passed.values()) / len(passed) if passed else 0.0
    return {"problems": len(passed), "draws": draws, "fix_rate": rate, "fix_rate_stderr": stderr,
            "any_of_draws": any_rate}


def dev_floor(loop: Loop) -> dict:
    """The `dev_floor` stage: the dev set's test-blind floor, verified in process 0's pool."""

    def run() -> dict:
        problems, _ = loop.problems_for("dev", loop.problems.dev, loop.trace_format)
        by_id = {p.example_id: p for p in problems}
        return blind_edit_floor(loop.problems.dev, {i: p.meta for i, p in by_id.items()}, loop.verify,
                                seed=loop.seed, timeouts={i: p.timeout for i, p in by_id.items()})

    return loop.timed("dev_floor", run, everywhere=False)  # verification only: process 0's pool
