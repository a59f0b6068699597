"""A seeded, fully offline generator of repair examples (the default data for the embedded demo and tests).

For each index the generator draws a template program (see `synthetic_templates.py`), computes its test
expectations by running the reference in-process (the code is ours, so this is safe), injects a bug with the
AST mutation operators, and keeps the first mutant that fails at least one visible test. Mutants run in-process
under a line budget (`sys.settrace`), so a mutant that loops far longer than its reference reads as a timeout
instead of stalling generation.

Splits are decided by a hash of the reference program, so the same program never lands in two splits and a
split's content does not depend on how many examples of another split were generated.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Any

from next_jax.data.example import Provenance, RepairExample
from next_jax.data.mutation import iter_mutants, normalized
from next_jax.data.synthetic_micro import MICRO_TEMPLATES
from next_jax.data.synthetic_templates import TEMPLATES, Program

# Template families a generator draws from (gin `synthetic_problems.template_family`); every name is unique.
FAMILIES: dict[str, dict[str, Callable[[random.Random], Program]]] = {"standard": TEMPLATES, "micro": MICRO_TEMPLATES}
ALL_TEMPLATES = {**TEMPLATES, **MICRO_TEMPLATES}

_FILENAME = "<synthetic>"
SPLITS = ("train", "validation")


class _Budget(Exception):
    """Raised inside a mutant that ran past its line budget."""


class _LineBudget:
    """A trace function that counts line events of `<synthetic>` frames and stops past a budget."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def __call__(self, frame: FrameType, event: str, arg: Any):
        if frame.f_code.co_filename != _FILENAME:
            return None
        return self._local

    def _local(self, frame: FrameType, event: str, arg: Any):
        if event == "line":
            self.left -= 1
            if self.left < 0:
                raise _Budget
        return self._local


def _load(code: str, entry_point: str):
    namespace: dict[str, Any] = {}
    exec(compile(code, _FILENAME, "exec"), namespace)  # noqa: S102 - generated code, see module docstring
    return namespace[entry_point]


def _outcome(fn, args: tuple, line_budget: int | None) -> tuple[str, Any]:
    """("value", v) or ("exception", type name) or ("timeout", None) for one call."""
    old = sys.gettrace()
    if line_budget is not None:
        sys.settrace(_LineBudget(line_budget))
    try:
        return "value", fn(*copy.deepcopy(args))
    except _Budget:
        return "timeout", None
    except Exception as e:  # noqa: BLE001 - a mutant may raise anything; that is its failure
        return "exception", type(e).__name__
    finally:
        sys.settrace(old)


def _call(entry_point: str, args: tuple) -> str:
    return f"{entry_point}({', '.join(map(repr, args))})"


def _distinct_args(program: Program, rng: random.Random, n: int) -> list[tuple]:
    out: list[tuple] = []
    for _ in range(20 * n):
        args = program.make_args(rng)
        if args not in out:
            out.append(args)
            if len(out) == n:
                break
    return out


def _shown(kind: str, value: Any) -> str:
    """How a failing call's outcome reads in a rationale."""
    if kind == "value":
        return f"returns {value!r}"
    if kind == "exception":
        return f"raises {value}"
    return "does not finish"


def fix_sentence(buggy: str, reference: str) -> str:
    """The gold rationale's second sentence: the line the mutation changed and its correct form (named by
    line number, as the inline trace numbers nothing but steps, so the line's text is quoted too)."""
    a, b = buggy.splitlines(), reference.splitlines()
    changed = [op for op in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes() if op[0] != "equal"]
    if len(changed) == 1 and changed[0][0] == "replace" and changed[0][2] - changed[0][1] == 1:
        _, i, _, j, j_end = changed[0]
        if j_end - j == 1:
            return f"Line {i + 1} must be `{b[j].strip()}`."
    if len(changed) == 1 and changed[0][0] == "delete":
        _, i, i_end, _, _ = changed[0]
        lines = "; ".join(f"`{line.strip()}`" for line in a[i:i_end])
        return f"Line {i + 1} {lines} must go."
    return "The program must follow the task."


def gold_rationale(buggy: str, reference: str, expected: Any, kind: str, value: Any) -> str:
    """A templated rationale from what the generator knows: the failing test's actual and expected outcome
    (the traced return value or exception), and the fix (`fix_sentence`).

    It does not restate the failing call: the prompt shows it twice, and a byte-level model of about 1M
    parameters almost never copied its arguments right (16 of 342 passing samples on the embedded default),
    so the rationales sampled before right fixes were garbled from their first bytes."""
    return f"It {_shown(kind, value)}, not {expected!r}. {fix_sentence(buggy, reference)}"


def failure_rationale(rationale: str, buggy: str, reference: str) -> str:
    """A gold rationale without its fix sentence: what an answer in line edits says before its edits
    (the edits themselves name the line and its correct form). Other rationales come back unchanged."""
    return rationale.removesuffix(" " + fix_sentence(buggy, reference))


def split_of(reference: str, validation_percent: int = 10) -> str:
    """The split a reference program belongs to, by a stable hash of its normalised text."""
    digest = hashlib.sha256(normalized(reference).encode()).digest()
    return "validation" if int.from_bytes(digest[:4], "big") % 100 < validation_percent else "train"


def make_example(
    seed: int,
    index: int,
    *,
    num_visible: int = 3,
    num_hidden: int = 5,
    max_mutants: int = 8,
    templates: Sequence[str] | None = None,
    operators: Sequence[str] | None = None,
    line_budget: int = 10_000,
) -> RepairExample | None:
    """The example for (seed, index), or None when no mutant of the drawn program fails a visible test."""
    rng = random.Random(f"{seed}:{index}")
    names = sorted(templates) if templates is not None else sorted(TEMPLATES)
    program = ALL_TEMPLATES[rng.choice(names)](rng)
    all_args = _distinct_args(program, rng, num_visible + num_hidden)
    if len(all_args) < num_visible + 1:
        return None
    ref = _load(program.code, program.entry_point)
    expected = []
    for args in all_args:
        kind, value = _outcome(ref, args, None)
        if kind != "value":
            raise RuntimeError(f"template {program.template} reference failed on {args}: {value}")
        expected.append(value)
    tests = [
        f"assert {_call(program.entry_point, a)} == {v!r}" for a, v in zip(all_args, expected, strict=True)
    ]
    visible = all_args[:num_visible]
    for mutant in itertools.islice(iter_mutants(program.code, rng, operators), max_mutants):
        try:
            buggy = _load(mutant.code, program.entry_point)
        except Exception:  # noqa: BLE001 - e.g. a mutant that fails at definition time
            continue
        failing, kinds, outcomes = [], [], []
        for i, args in enumerate(visible):
            kind, value = _outcome(buggy, args, line_budget)
            if kind == "value" and value == expected[i] and type(value) is type(expected[i]):
                continue
            failing.append(i)
            outcomes.append((kind, value))
            kinds.append(
                {"value": "assertion", "exception": f"exception:{value}", "timeout": "timeout"}[kind]
            )
        if failing:
            return RepairExample(
                id=f"synthetic/{seed}/{index}",
                problem_id=f"synthetic/{seed}/{index}",
                description=program.description,
                buggy_code=mutant.code,
                entry_point=program.entry_point,
                tests=tuple(tests[:num_visible]),
                hidden_tests=tuple(tests),
                reference=program.code,
                failing_tests=tuple(failing),
                failure_type=kinds[0],
                provenance=Provenance(
                    "synthetic", "mutation", mutant.operator, f"template={program.template}; {mutant.what}"
                ),
                rationale=gold_rationale(mutant.code, program.code, expected[failing[0]], *outcomes[0]),
            )
    return None


def iter_synthetic(split: str, seed: int = 0, **kwargs: Any) -> Iterator[RepairExample]:
    """Endless stream of the examples of `split`, in index order (take as many as needed)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    validation_percent = kwargs.pop("validation_percent", 10)
    index = 0
    while True:
        ex = make_example(seed, index, **kwargs)
        index += 1
        if ex is not None and split_of(ex.reference or "", validation_percent) == split:
            yield ex


def generate_synthetic(
    num_examples: int, split: str = "train", seed: int = 0, **kwargs: Any
) -> list[RepairExample]:
    """The first `num_examples` examples of `split` for `seed`."""
    it = iter_synthetic(split, seed, **kwargs)
    return [next(it) for _ in range(num_examples)]


def hash_bucket(text: str, buckets: int = 100) -> int:
    """A stable bucket in [0, buckets) for a program, by a hash of its normalised text."""
    digest = hashlib.sha256(normalized(text).encode()).digest()
    return int.from_bytes(digest[:4], "big") % buckets


def three_way_split(reference: str, dev_percent: int, seed_percent: int) -> str:
    """"dev", "seed" or "pool" for a reference program, by a hash of its normalised text: a program's
    bugs never land in two of the self-training splits."""
    bucket = hash_bucket(reference)
    if bucket < dev_percent:
        return "dev"
    return "seed" if bucket < dev_percent + seed_percent else "pool"


def selftrain_splits(
    seed: int,
    sizes: dict[str, int],
    *,
    dev_percent: int = 20,
    seed_percent: int = 20,
    max_index: int = 1_000_000,
    **kwargs: Any,
) -> dict[str, list[RepairExample]]:
    """The first `sizes[split]` examples of each of "seed", "pool" and "dev" for `seed`.

    Splits are decided by a hash of the reference program (`three_way_split`), and examples are deduplicated
    by their normalised buggy program across all splits, so no buggy program is seen twice.
    """
    out: dict[str, list[RepairExample]] = {k: [] for k in sizes}
    seen: set[str] = set()
    for index in range(max_index):
        if all(len(out[k]) >= n for k, n in sizes.items()):
            return out
        ex = make_example(seed, index, **kwargs)
        if ex is None:
            continue
        split = three_way_split(ex.reference or "", dev_percent, seed_percent)
        key = normalized(ex.buggy_code)
        if split not in out or len(out[split]) >= sizes[split] or key in seen:
            continue
        seen.add(key)
        out[split].append(ex)
    raise RuntimeError(f"fewer synthetic examples than asked for after {max_index} draws: {sizes}")


def iter_programs(
    seed: int, exclude: Callable[[str], bool] = lambda code: False, templates: Sequence[str] | None = None
) -> Iterator[tuple[str, str]]:
    """Endless (description, reference code) pairs of template programs for seed `seed`, skipping those for
    which `exclude(code)` holds (e.g. the programs of a held-out split). `templates`: names (default: the
    standard family)."""
    for description, code, _ in iter_programs_with_calls(seed, exclude, templates):
        yield description, code


def iter_programs_with_calls(
    seed: int, exclude: Callable[[str], bool] = lambda code: False, templates: Sequence[str] | None = None
) -> Iterator[tuple[str, str, str]]:
    """`iter_programs` with a call of each program on arguments drawn from its template (e.g. to trace it);
    the same programs in the same order for a seed."""
    rng = random.Random(f"programs:{seed}")
    call_rng = random.Random(f"program-calls:{seed}")  # its own stream: the programs stay those of iter_programs
    names = sorted(templates) if templates is not None else sorted(TEMPLATES)
    while True:
        program = ALL_TEMPLATES[rng.choice(names)](rng)
        if not exclude(program.code):
            yield program.description, program.code, _call(program.entry_point, program.make_args(call_rng))
