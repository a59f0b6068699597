"""Readers for the public benchmark files: MBPP, HumanEval, HumanEvalFix (HumanEvalPack-Python), HumanEval+.

Each reader takes a local path (the files as their upstream repositories store them) and returns the parsed
problems plus a list of `ReadIssue`s: a malformed record is reported with its file and line and skipped, and
the issue is also logged, so nothing is dropped silently. Users without the files download them through TFDS
(`tfds_public.py`: the pinned upstream files, and a TFDS MBPP dataset).
"""

from __future__ import annotations

import ast
import dataclasses
import gzip
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from next_jax.execution import astparse

log = logging.getLogger(__name__)

T = TypeVar("T")


def default_data_dir() -> Path:
    """`$NEXT_JAX_DATA`, else `../shared/data` next to the repository root."""
    env = os.environ.get("NEXT_JAX_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


@dataclasses.dataclass(frozen=True)
class ReadIssue:
    """A record that could not be read: where it is and why."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclasses.dataclass
class Loaded(Generic[T]):
    """Parsed records and the issues met while reading them."""

    records: list[T]
    issues: list[ReadIssue]


@dataclasses.dataclass(frozen=True)
class MbppProblem:
    task_id: int
    text: str
    code: str
    entry_point: str
    tests: tuple[str, ...]
    setup: str
    challenge_tests: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class HumanEvalProblem:
    task_id: str
    prompt: str
    entry_point: str
    canonical_solution: str
    test: str  # defines check(candidate); the caller appends check(entry_point)

    @property
    def reference(self) -> str:
        return self.prompt + self.canonical_solution


@dataclasses.dataclass(frozen=True)
class HumanEvalFixProblem:
    task_id: str
    prompt: str
    entry_point: str
    canonical_solution: str
    buggy_solution: str
    test: str  # already ends with check(entry_point)
    bug_type: str
    failure_symptoms: str
    docstring: str

    @property
    def reference(self) -> str:
        return self.prompt + self.canonical_solution

    @property
    def buggy_program(self) -> str:
        return self.prompt + self.buggy_solution

    @property
    def number(self) -> int:
        return int(self.task_id.split("/")[1])


@dataclasses.dataclass(frozen=True)
class EvalPlusProblem:
    task_id: str
    prompt: str
    entry_point: str
    canonical_solution: str
    base_input: tuple[tuple[Any, ...], ...]
    plus_input: tuple[tuple[Any, ...], ...]
    atol: float

    @property
    def number(self) -> int:
        return int(self.task_id.split("/")[1])


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    # Bytes, decoded per record: a line of invalid UTF-8 is then one malformed record, not a failed read.
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                yield lineno, line


def _read_jsonl(path: str | Path, parse: Callable[[dict[str, Any]], T]) -> Loaded[T]:
    path = Path(path)
    out: Loaded[T] = Loaded([], [])
    for lineno, line in _lines(path):
        try:
            rec = json.loads(line.decode("utf-8"))
            if not isinstance(rec, dict):
                raise ValueError(f"expected a JSON object, got {type(rec).__name__}")
            out.records.append(parse(rec))
        except (ValueError, KeyError, TypeError, SyntaxError) as e:
            issue = ReadIssue(str(path), lineno, f"{type(e).__name__}: {e}")
            log.warning("skipping malformed record %s", issue)
            out.issues.append(issue)
    return out


def _str(rec: dict[str, Any], key: str) -> str:
    v = rec[key]
    if not isinstance(v, str):
        raise TypeError(f"field {key!r} is {type(v).__name__}, expected str")
    return v


def _lf(text: str) -> str:
    """Unix line endings (MBPP stores CRLF, and a few solutions end in a lone CR)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _str_list(rec: dict[str, Any], key: str) -> tuple[str, ...]:
    v = rec.get(key) or []
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise TypeError(f"field {key!r} must be a list of strings")
    return tuple(_lf(s) for s in v)


def mbpp_entry_point(code: str, test: str) -> str:
    """The function of `code` that `test` calls (the outermost such call)."""
    defined = {n.name for n in ast.walk(astparse.parse(code)) if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    for node in ast.walk(astparse.parse(test)):  # breadth-first: the outermost call comes first
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in defined:
            return node.func.id
    raise ValueError("no function defined in the solution is called by its first test")


def parse_mbpp_record(rec: dict[str, Any]) -> MbppProblem:
    """One upstream MBPP record (from the JSONL file or the TFDS dataset) as a problem; raises if malformed."""
    code = _lf(_str(rec, "code"))
    tests = _str_list(rec, "test_list")
    if not tests:
        raise ValueError("empty test_list")
    return MbppProblem(
        task_id=int(rec["task_id"]),
        text=_str(rec, "text").strip(),
        code=code,
        entry_point=mbpp_entry_point(code, tests[0]),
        tests=tests,
        setup=_lf(rec.get("test_setup_code") or ""),
        challenge_tests=_str_list(rec, "challenge_test_list"),
    )


def read_mbpp(path: str | Path) -> Loaded[MbppProblem]:
    """Read `mbpp.jsonl` (Austin et al. 2021)."""
    return _read_jsonl(path, parse_mbpp_record)


def _parse_humaneval(rec: dict[str, Any]) -> HumanEvalProblem:
    return HumanEvalProblem(
        task_id=_str(rec, "task_id"),
        prompt=_str(rec, "prompt"),
        entry_point=_str(rec, "entry_point"),
        canonical_solution=_str(rec, "canonical_solution"),
        test=_str(rec, "test"),
    )


def read_humaneval(path: str | Path) -> Loaded[HumanEvalProblem]:
    """Read `HumanEval.jsonl.gz` (Chen et al. 2021)."""
    return _read_jsonl(path, _parse_humaneval)


def _parse_humanevalfix(rec: dict[str, Any]) -> HumanEvalFixProblem:
    p = HumanEvalFixProblem(
        task_id=_str(rec, "task_id"),
        prompt=_str(rec, "prompt"),
        entry_point=_str(rec, "entry_point"),
        canonical_solution=_str(rec, "canonical_solution"),
        buggy_solution=_str(rec, "buggy_solution"),
        test=_str(rec, "test"),
        bug_type=_str(rec, "bug_type"),
        failure_symptoms=_str(rec, "failure_symptoms"),
        docstring=_str(rec, "docstring"),
    )
    astparse.parse(p.buggy_program)  # a buggy program that does not even parse is a data error here
    return p


def read_humanevalfix(path: str | Path) -> Loaded[HumanEvalFixProblem]:
    """Read the Python part of HumanEvalPack (`humanevalpack.jsonl`, Muennighoff et al. 2023)."""
    return _read_jsonl(path, _parse_humanevalfix)


def _inputs(rec: dict[str, Any], key: str) -> tuple[tuple[Any, ...], ...]:
    v = rec[key]
    if isinstance(v, str):  # some releases store the input lists as JSON text
        v = json.loads(v)
    if not isinstance(v, list) or not all(isinstance(args, list) for args in v):
        raise TypeError(f"field {key!r} must be a list of argument lists")
    return tuple(tuple(args) for args in v)


def _parse_evalplus(rec: dict[str, Any]) -> EvalPlusProblem:
    return EvalPlusProblem(
        task_id=_str(rec, "task_id"),
        prompt=_str(rec, "prompt"),
        entry_point=_str(rec, "entry_point"),
        canonical_solution=_str(rec, "canonical_solution"),
        base_input=_inputs(rec, "base_input"),
        plus_input=_inputs(rec, "plus_input"),
        atol=float(rec.get("atol") or 0.0),
    )


def read_evalplus(path: str | Path) -> Loaded[EvalPlusProblem]:
    """Read EvalPlus `HumanEvalPlus.jsonl.gz` (Liu et al. 2023)."""
    return _read_jsonl(path, _parse_evalplus)
