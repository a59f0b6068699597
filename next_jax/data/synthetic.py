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
import hashlib
import itertools
import random
import sys
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Any

from next_jax.data.example import Provenance, RepairExample
from next_jax.data.mutation import iter_mutants, normalized
from next_jax.data.synthetic_templates import TEMPLATES, Program

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
    program = TEMPLATES[rng.choice(names)](rng)
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
        failing, kinds = [], []
        for i, args in enumerate(visible):
            kind, value = _outcome(buggy, args, line_budget)
            if kind == "value" and value == expected[i] and type(value) is type(expected[i]):
                continue
            failing.append(i)
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
