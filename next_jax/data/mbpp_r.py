"""MBPP-R: program-repair tasks built from MBPP problems (Ni et al. 2024, Section 4).

Buggy programs come from a `BugSource`:
- `SampledBugs`: the paper's method. A model (anything with the `Sampler` protocol, e.g. the decode issue's
  sampler) writes solutions; the ones that fail a test become repair tasks.
- `MutatedBugs`: AST mutation of the reference solution (`mutation.py`), for a fully offline build.

Candidates are deduplicated after normalising whitespace and comments, capped per problem, and verified by the
pool: only programs that fail at least one of the problem's tests are kept. Splits are by MBPP task id, so no
problem is in two splits.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from next_jax.data.example import Provenance, RepairExample
from next_jax.data.mutation import iter_mutants, normalized
from next_jax.data.parsing import parse_completion
from next_jax.data.readers import MbppProblem
from next_jax.execution.verdict import Candidate, Verdict

# MBPP's standard id ranges (Austin et al. 2021; validation/train as split by Hugging Face). Ids 1-10 are the
# few-shot prompt problems and 11-510 the test set; neither is used for repair training.
log = logging.getLogger(__name__)

DEFAULT_SPLITS: dict[str, tuple[int, int]] = {"train": (601, 974), "validation": (511, 600)}
PAPER_SIZES = {"train": 10_047, "validation": 1_468}


class Sampler(Protocol):
    """What MBPP-R needs from a model: `num_samples` completions per prompt."""

    def generate(self, prompts: list[str], num_samples: int) -> list[list[str]]: ...


@dataclasses.dataclass(frozen=True)
class BuggyCandidate:
    code: str
    provenance: Provenance


class BugSource(Protocol):
    def __call__(self, problems: Sequence[MbppProblem]) -> dict[int, list[BuggyCandidate]]: ...


@dataclasses.dataclass
class MutatedBugs:
    """Mutants of each reference solution, `per_problem` candidates per problem (before verification)."""

    per_problem: int = 40
    seed: int = 0
    operators: Sequence[str] | None = None

    def __call__(self, problems: Sequence[MbppProblem]) -> dict[int, list[BuggyCandidate]]:
        out = {}
        for p in problems:
            rng = random.Random(f"{self.seed}:{p.task_id}")
            out[p.task_id] = [
                BuggyCandidate(m.code, Provenance("mbpp", "mutation", m.operator, m.what))
                for _, m in zip(
                    range(self.per_problem), iter_mutants(p.code, rng, self.operators), strict=False
                )
            ]
        return out


def solution_prompt(problem: MbppProblem) -> str:
    """The MBPP-style synthesis prompt (Austin et al. 2021) used to sample candidate solutions."""
    tests = "\n".join(problem.tests)
    return (
        f"You are an expert Python programmer, and here is your task: {problem.text} "
        f"Your code should pass these tests:\n\n{tests}\n\n```python\n"
    )


@dataclasses.dataclass
class SampledBugs:
    """Solutions sampled from a model; the ones that parse become candidates (failing ones are kept later)."""

    sampler: Sampler
    num_samples: int = 32
    detail: str = ""  # e.g. the model name and temperature, recorded in provenance

    def __call__(self, problems: Sequence[MbppProblem]) -> dict[int, list[BuggyCandidate]]:
        prompts = [solution_prompt(p) for p in problems]
        completions = self.sampler.generate(prompts, self.num_samples)
        out: dict[int, list[BuggyCandidate]] = {}
        for p, samples in zip(problems, completions, strict=True):
            cands = []
            for text in samples:
                # The prompt opens a fence, so a well-formed sample is code followed by a closing fence.
                parsed = parse_completion("```python\n" + text, p.entry_point)
                if parsed.ok:
                    cands.append(BuggyCandidate(parsed.code, Provenance("mbpp", "sample", "", self.detail)))
            out[p.task_id] = cands
        return out


def dedupe(candidates: Iterable[BuggyCandidate], reference: str, cap: int) -> list[BuggyCandidate]:
    """Drop candidates equal to the reference or to each other after normalisation; keep at most `cap`."""
    seen = {normalized(reference)}
    out = []
    for c in candidates:
        key = normalized(c.code)
        if key not in seen:
            seen.add(key)
            out.append(c)
            if len(out) == cap:
                break
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


def build_mbpp_r(
    problems: Sequence[MbppProblem],
    source: BugSource,
    pool: Any,
    *,
    splits: Mapping[str, tuple[int, int]] = DEFAULT_SPLITS,
    cap_per_problem: int = 30,
) -> dict[str, list[RepairExample]]:
    """Repair examples per split; every kept buggy program failed at least one test in the pool."""
    ranges = sorted(splits.values())
    for (_, hi), (lo, _) in zip(ranges, ranges[1:], strict=False):
        if lo <= hi:
            raise ValueError(f"overlapping split ranges: {dict(splits)}")
    chosen = [p for p in problems if split_of(p.task_id, splits) is not None]
    candidates = source(chosen)
    jobs: list[tuple[MbppProblem, BuggyCandidate]] = []
    for p in chosen:
        for c in dedupe(candidates.get(p.task_id, []), p.code, cap_per_problem):
            jobs.append((p, c))
    to_verify = [Candidate(f"{p.task_id}/{i}", c.code, p.tests, p.setup) for i, (p, c) in enumerate(jobs)]
    verdicts: list = []
    for start in range(0, len(to_verify), 500):  # in chunks, to log progress on long builds
        verdicts += pool.verify(to_verify[start : start + 500], details=True)
        log.info("MBPP-R: verified %d / %d candidates", len(verdicts), len(to_verify))
    out: dict[str, list[RepairExample]] = {name: [] for name in splits}
    per_problem: collections.Counter[int] = collections.Counter()
    for (p, c), v in zip(jobs, verdicts, strict=True):
        if v.status in ("pass", "sandbox_error", "invalid_record"):
            continue  # a passing "bug" is an equivalent mutant; a sandbox error says nothing about the program
        k = per_problem[p.task_id]
        per_problem[p.task_id] += 1
        out[split_of(p.task_id, splits)].append(
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
    return out


def statistics(splits: Mapping[str, Sequence[RepairExample]]) -> dict[str, Any]:
    """Per-split counts of examples and problems, failure types and bug operators, next to the paper's sizes."""
    stats: dict[str, Any] = {}
    for name, examples in splits.items():
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
        }
    return stats
