"""The repair-example record and its JSON-lines form.

A `RepairExample` is one program-repair task: a buggy program for a described problem, the tests shown in
the prompt, the hidden tests that decide the verdict, and where the bug came from. Records are frozen so they
can be shared between the builder, the prompt renderer and the SeqIO sources without defensive copies.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where a buggy program came from.

    dataset: the problem source ("mbpp", "humanevalfix", "synthetic"); origin: how the bug was made
    ("mutation", "sample", "human", "template"); operator: the mutation operator or bug type; detail: free text
    (sampler name and temperature, seed, original bug description...).
    """

    dataset: str
    origin: str
    operator: str = ""
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class RepairExample:
    """One repair task.

    `tests` are shown in the prompt; `failing_tests` indexes the ones the buggy program fails (their traces are
    rendered). `hidden_tests` decide the verdict and never appear in a prompt. `setup` is trusted test-side code
    (imports, comparison helpers) run before the tests. `failure_type` summarises how the buggy program failed
    when the example was built ("assertion", "exception:TypeError", "timeout", ...). `rationale` is a gold
    explanation of the bug where the builder knows one (the synthetic generator writes it from the mutation
    and the failing call); it serves only as a seed demonstration's target, never in a prompt.
    """

    id: str
    problem_id: str
    description: str
    buggy_code: str
    entry_point: str
    tests: tuple[str, ...]
    hidden_tests: tuple[str, ...]
    reference: str | None = None
    setup: str = ""
    failing_tests: tuple[int, ...] = ()
    failure_type: str = ""
    provenance: Provenance = Provenance(dataset="", origin="")
    rationale: str = ""

    def __post_init__(self) -> None:
        bad = [i for i in self.failing_tests if not 0 <= i < len(self.tests)]
        if bad:
            raise ValueError(f"{self.id}: failing_tests {bad} out of range for {len(self.tests)} tests")

    @property
    def verdict_tests(self) -> tuple[str, ...]:
        """Tests that decide whether a fix passes: hidden tests, or the visible ones when none are hidden."""
        return self.hidden_tests or self.tests

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples become lists)."""
        d = dataclasses.asdict(self)
        for key in ("tests", "hidden_tests", "failing_tests"):
            d[key] = list(d[key])
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RepairExample:
        """Inverse of `to_json`; unknown keys are an error so schema drift is caught early."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"unknown RepairExample fields: {sorted(unknown)}")
        kw = dict(d)
        for key in ("tests", "hidden_tests"):
            kw[key] = tuple(str(t) for t in kw.get(key, ()))
        kw["failing_tests"] = tuple(int(i) for i in kw.get("failing_tests", ()))
        kw["provenance"] = Provenance(**kw.get("provenance", {"dataset": "", "origin": ""}))
        return cls(**kw)


def _open(path: Path, mode: str, gz: bool | None = None):
    # Gzip by suffix so run directories can store shards compressed with the same reader.
    if path.suffix == ".gz" if gz is None else gz:
        return gzip.open(path, mode + "t", encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def write_jsonl(path: str | Path, records: Iterable[Mapping[str, Any]]) -> int:
    """Write dicts as JSON lines (gzip if the name ends in .gz) via a temporary name; returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with _open(tmp, "w", gz=path.suffix == ".gz") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
            n += 1
    tmp.replace(path)
    return n


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield dicts from a JSON-lines file; a bad line raises with its file and line number."""
    path = Path(path)
    with _open(path, "r") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: invalid JSON: {e}") from e


def write_examples(path: str | Path, examples: Iterable[RepairExample]) -> int:
    """Write repair examples as JSON lines."""
    return write_jsonl(path, (ex.to_json() for ex in examples))


def read_examples(path: str | Path) -> list[RepairExample]:
    """Read repair examples written by `write_examples`."""
    return [RepairExample.from_json(d) for d in iter_jsonl(path)]
