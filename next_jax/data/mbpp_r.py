"""MBPP-R: program-repair tasks built from MBPP problems (Ni et al. 2024, Section 4).

Buggy programs come from a `BugSource`:
- `SampledBugs`: the paper's method. A model writes solutions to each problem (through anything with the
  `CompletionSampler` protocol; `next_jax.selftrain.text_sampler` backs it with `next_jax.decode.Sampler`); the
  ones that fail a test become repair tasks. This module imports no model code: the sampler is injected.
- `MutatedBugs`: AST mutation of the reference solution (`mutation.py`), for a fully offline build.

Candidates are deduplicated after normalising whitespace and comments and verified by the pool; only programs
that fail at least one of the problem's tests are kept, at most `cap_per_problem` per problem. Every candidate
that is not kept is counted under the reason it was dropped (`MbppRBuild.dropped`), so nothing is lost
silently. Splits are by MBPP task id, so no problem is in two splits.
"""

from __future__ import annotations

import ast
import collections
import dataclasses
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from next_jax.data.example import Provenance, RepairExample
from next_jax.data.mutation import iter_mutants, normalized
from next_jax.data.parsing import parse_completion
from next_jax.data.readers import MbppProblem, default_data_dir, read_mbpp
from next_jax.execution import astparse
from next_jax.execution.verdict import Candidate, Verdict

log = logging.getLogger(__name__)

# MBPP's standard id ranges (Austin et al. 2021; validation/train as split by Hugging Face). Ids 1-10 are the
# few-shot prompt problems and 11-510 the test set; neither is used for repair training.
DEFAULT_SPLITS: dict[str, tuple[int, int]] = {"train": (601, 974), "validation": (511, 600)}
PAPER_SIZES = {"train": 10_047, "validation": 1_468}
# Verdicts that do not make a repair task: a passing "bug" is correct code (an equivalent mutant, or a model's
# right answer); a sandbox error or an invalid record says nothing about the program.
_NOT_BUGGY = ("pass", "sandbox_error", "invalid_record")


class CompletionSampler(Protocol):
    """What MBPP-R needs from a model: `num_samples` text completions of each prompt."""

    def generate(self, prompts: list[str], num_samples: int) -> list[list[str]]: ...


@dataclasses.dataclass(frozen=True)
class BuggyCandidate:
    """A program proposed as a bug; `rejected` names why it cannot be one before it is run (else "")."""

    code: str
    provenance: Provenance
    rejected: str = ""


class BugSource(Protocol):
    def __call__(self, problems: Sequence[MbppProblem]) -> dict[int, list[BuggyCandidate]]: ...


@dataclasses.dataclass
class MutatedBugs:
    """Mutants of each reference solution, `per_problem` candidates per problem (before verification)."""

    per_problem: int = 40
    seed: int = 0
    operators: Sequence[str] | None = None
    max_order: int = 1  # 2: pairs of edits once single edits run out (see `mutation.iter_mutants`)

    def __call__(self, problems: Sequence[MbppProblem]) -> dict[int, list[BuggyCandidate]]:
        out = {}
        for p in problems:
            rng = random.Random(f"{self.seed}:{p.task_id}")
            out[p.task_id] = [
                BuggyCandidate(m.code, Provenance("mbpp", "mutation", m.operator, m.what))
                for _, m in zip(
                    range(self.per_problem),
                    iter_mutants(p.code, rng, self.operators, self.max_order),
                    strict=False,
                )
            ]
        return out


def _task(problem: MbppProblem) -> str:
    tests = "\n".join(problem.tests)
    return (
        f"You are an expert Python programmer, and here is your task: {problem.text} "
        f"Your code should pass these tests:\n\n{tests}\n\n```python\n"
    )


def solution_prompt(problem: MbppProblem, shots: Sequence[MbppProblem] = ()) -> str:
    """The MBPP synthesis prompt (Austin et al. 2021), fenced, after optional solved `shots`.

    It ends inside an open fence, so a sample is code up to the closing fence.
    """
    prefix = "".join(f"{_task(s)}{s.code.strip()}\n```\n\n" for s in shots)
    return prefix + _task(problem)


def mbpp_shots(ids: Sequence[int] = (2, 3, 4), path: str | None = None) -> list[MbppProblem]:
    """MBPP prompt-split problems used as few-shot examples (Austin et al. used ids 2, 3 and 4)."""
    records = {p.task_id: p for p in read_mbpp(path or default_data_dir() / "mbpp" / "mbpp.jsonl").records}
    missing = [i for i in ids if i not in records]
    if missing:
        raise ValueError(f"MBPP problems {missing} not found for few-shot prompts")
    return [records[i] for i in ids]


def _is_main_guard(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.If) and "__name__" in ast.unparse(stmt.test)


def strip_top_level_checks(code: str) -> str:
    """`code` without top-level asserts, bare expressions (prints, calls) and `if __name__ == ...` blocks.

    Models often test their own solution after it; left in, a wrong self-test would make a correct solution
    fail at import and pass for a bug. Definitions, imports and assignments stay.
    """
    try:
        body = astparse.parse(code).body
    except SyntaxError:
        return code
    drop: set[int] = set()
    for stmt in body:
        if isinstance(stmt, ast.Assert | ast.Expr) or _is_main_guard(stmt):
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # a module docstring
            drop.update(range(stmt.lineno, stmt.end_lineno + 1))
    lines = code.split("\n")
    return "\n".join(line for i, line in enumerate(lines, 1) if i not in drop).strip("\n") + "\n"


@dataclasses.dataclass
class SampledBugs:
    """Solutions sampled from a model: every sample becomes a candidate, unparsable ones already rejected.

    `shots`: solved problems put before each prompt (see `mbpp_shots`); `detail` (e.g. the model name and
    temperature) is recorded in provenance.
    """

    sampler: CompletionSampler
    num_samples: int = 32
    shots: Sequence[MbppProblem] = ()
    detail: str = ""

    def __call__(self, problems: Sequence[MbppProblem]) -> dict[int, list[BuggyCandidate]]:
        prompts = [solution_prompt(p, self.shots) for p in problems]
        completions = self.sampler.generate(prompts, self.num_samples)
        out: dict[int, list[BuggyCandidate]] = {}
        for p, samples in zip(problems, completions, strict=True):
            provenance = Provenance("mbpp", "sample", "", self.detail)
            cands = []
            for text in samples:
                # The prompt opened the fence: the sample's program ends at the first closing fence, and
                # whatever follows (a base model writing the next few-shot problem) is not part of it.
                body = text.split("\n```")[0]
                parsed = parse_completion(f"```python\n{body}\n```", p.entry_point)
                if parsed.ok:
                    cands.append(BuggyCandidate(strip_top_level_checks(parsed.code), provenance))
                else:
                    cands.append(BuggyCandidate(text, provenance, rejected=f"unparsable:{parsed.status}"))
            out[p.task_id] = cands
        return out


def dedupe(
    candidates: Iterable[BuggyCandidate], reference: str, dropped: collections.Counter[str]
) -> list[BuggyCandidate]:
    """Candidates worth running: not rejected, not the reference, no repeats (after normalisation).

    Each one left out is counted in `dropped` under its reason.
    """
    ref = normalized(reference)
    seen = {ref}
    out = []
    for c in candidates:
        if c.rejected:
            dropped[c.rejected] += 1
            continue
        key = normalized(c.code)
        if key in seen:
            dropped["same_as_reference" if key == ref else "duplicate"] += 1
            continue
        seen.add(key)
        out.append(c)
    return out


def failure_type(verdict: Verdict) -> str:
    """A short failure label for statistics: "assertion", "exception:<Type>", "timeout", ..."""
    if verdict.status == "fail":
        return "assertion"
    if verdict.status == "runtime_error":
        types = [d.get("type") for d in verdict.details if d.get("type")]
        return f"exception:{types[0]}" if types else "exception"
    return verdict.status


def failing_tests(verdict: Verdict, num_tests: int) -> tuple[int, ...]:
    """Indices of the tests a failing verdict names; all tests when it names none (e.g. a timeout)."""
    bad = sorted({int(d["test"]) for d in verdict.details if "test" in d and not d.get("ok", False)})
    return tuple(i for i in bad if 0 <= i < num_tests) or tuple(range(num_tests))


def split_of(task_id: int, splits: Mapping[str, tuple[int, int]]) -> str | None:
    for name, (lo, hi) in splits.items():
        if lo <= task_id <= hi:
            return name
    return None


@dataclasses.dataclass
class MbppRBuild:
    """Repair examples per split, and per split how many candidates were dropped for each reason.

    Reasons: "unparsable:<parse status>", "same_as_reference", "duplicate", a verdict status in `_NOT_BUGGY`
    ("pass" for a candidate that passes all tests), and "unverified_cap_reached" for candidates left over
    once a problem had `cap_per_problem` bugs.
    """

    splits: dict[str, list[RepairExample]]
    dropped: dict[str, dict[str, int]]


def _verify(pool: Any, candidates: list[Candidate]) -> list[Verdict]:
    verdicts: list[Verdict] = []
    for start in range(0, len(candidates), 500):  # in chunks, to log progress on long builds
        # Every test: the failing tests a verdict names become the example's failing_tests.
        verdicts += pool.verify(candidates[start : start + 500], details=True, all_tests=True)
        log.info("MBPP-R: verified %d / %d candidates this round", len(verdicts), len(candidates))
    return verdicts


def build_mbpp_r(
    problems: Sequence[MbppProblem],
    source: BugSource,
    pool: Any,
    *,
    splits: Mapping[str, tuple[int, int]] = DEFAULT_SPLITS,
    cap_per_problem: int = 30,
) -> MbppRBuild:
    """Repair examples per split; every kept buggy program failed at least one test in the pool.

    The cap counts kept (failing) programs: candidates are verified in rounds, each round running as many
    of a problem's next candidates as it still needs bugs, so a source whose candidates mostly pass (a good
    model) still fills its cap when it can, and no candidate beyond the cap is run.
    """
    ranges = sorted(splits.values())
    for (_, hi), (lo, _) in zip(ranges, ranges[1:], strict=False):
        if lo <= hi:
            raise ValueError(f"overlapping split ranges: {dict(splits)}")
    chosen = [p for p in problems if split_of(p.task_id, splits) is not None]
    candidates = source(chosen)
    dropped = {name: collections.Counter() for name in splits}
    queues = {
        p.task_id: collections.deque(
            dedupe(candidates.get(p.task_id, []), p.code, dropped[split_of(p.task_id, splits)])
        )
        for p in chosen
    }
    kept: dict[int, list[tuple[BuggyCandidate, Verdict]]] = {p.task_id: [] for p in chosen}
    while True:
        jobs = [
            (p, queues[p.task_id].popleft())
            for p in chosen
            for _ in range(min(cap_per_problem - len(kept[p.task_id]), len(queues[p.task_id])))
        ]
        if not jobs:
            break
        verdicts = _verify(
            pool,
            [
                Candidate(f"{p.task_id}/{i}", c.code, p.tests, p.setup, p.entry_point)
                for i, (p, c) in enumerate(jobs)
            ],
        )
        for (p, c), v in zip(jobs, verdicts, strict=True):
            if v.status in _NOT_BUGGY:
                dropped[split_of(p.task_id, splits)][v.status] += 1
            else:
                kept[p.task_id].append((c, v))
    out: dict[str, list[RepairExample]] = {name: [] for name in splits}
    for p in chosen:
        split = split_of(p.task_id, splits)
        if queues[p.task_id]:
            dropped[split]["unverified_cap_reached"] += len(queues[p.task_id])
        for k, (c, v) in enumerate(kept[p.task_id]):
            out[split].append(
                RepairExample(
                    id=f"mbpp_r/{p.task_id}/{k}",
                    problem_id=f"mbpp/{p.task_id}",
                    description=p.text,
                    buggy_code=c.code,
                    entry_point=p.entry_point,
                    tests=p.tests,
                    hidden_tests=p.tests + p.challenge_tests,
                    reference=p.code,
                    setup=p.setup,
                    failing_tests=failing_tests(v, len(p.tests)),
                    failure_type=failure_type(v),
                    provenance=c.provenance,
                )
            )
    for name, counts in dropped.items():
        if counts:
            log.info("MBPP-R %s: kept %d, dropped %s", name, len(out[name]), dict(counts.most_common()))
    return MbppRBuild(out, {name: dict(counts.most_common()) for name, counts in dropped.items()})


def statistics(built: MbppRBuild) -> dict[str, Any]:
    """Per split: counts of examples and problems (next to the paper's), failure types, bug operators and
    origins of the kept programs, and the dropped candidates by reason."""
    stats: dict[str, Any] = {}
    for name, examples in built.splits.items():
        stats[name] = {
            "examples": len(examples),
            "problems": len({e.problem_id for e in examples}),
            "paper_examples": PAPER_SIZES.get(name),
            "failure_types": dict(collections.Counter(e.failure_type for e in examples).most_common()),
            "bug_operators": dict(
                collections.Counter(
                    e.provenance.operator or e.provenance.origin for e in examples
                ).most_common()
            ),
            "origins": dict(collections.Counter(e.provenance.origin for e in examples).most_common()),
            "dropped": built.dropped.get(name, {}),
        }
    return stats
