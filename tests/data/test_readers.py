from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pytest

from next_jax.data import readers


def test_mbpp(data_dir):
    loaded = readers.read_mbpp(data_dir / "mbpp" / "mbpp.jsonl")
    assert len(loaded.records) == 974 and loaded.issues == []
    by_id = {p.task_id: p for p in loaded.records}
    assert all("\r" not in p.code for p in loaded.records)  # upstream CRLF normalised
    assert by_id[2].entry_point == "similar_elements"
    assert all(len(p.tests) == 3 for p in loaded.records)
    assert sum(bool(p.setup) for p in loaded.records) == 2
    assert sum(bool(p.challenge_tests) for p in loaded.records) == 11
    # the entry point is a function the solution defines and every test calls
    assert all(
        p.entry_point in p.tests[0] and f"def {p.entry_point}" in p.code
        for p in loaded.records
        if not p.code.lstrip().startswith("class")
    )


def test_humaneval_family(data_dir):
    he = readers.read_humaneval(data_dir / "humaneval" / "HumanEval.jsonl.gz")
    fix = readers.read_humanevalfix(data_dir / "humanevalfix" / "humanevalpack.jsonl")
    plus = readers.read_evalplus(data_dir / "evalplus" / "HumanEvalPlus.jsonl.gz")
    assert [len(x.records) for x in (he, fix, plus)] == [164, 164, 164]
    assert not (he.issues or fix.issues or plus.issues)
    f0 = fix.records[0]
    assert f0.buggy_program != f0.reference and f0.test.rstrip().endswith(f"check({f0.entry_point})")
    assert {p.number for p in fix.records} == {p.number for p in plus.records} == set(range(164))
    assert sum(len(p.base_input) for p in plus.records) == 1570
    assert sum(len(p.plus_input) for p in plus.records) == 122683
    assert {p.atol for p in plus.records} == {0.0, 1e-6, 1e-4}


def test_malformed_records_are_reported_with_location_and_skipped(tmp_path, caplog):
    good = {
        "text": "t",
        "code": "def f(x):\r\n    return x\r\n",
        "task_id": 1,
        "test_setup_code": "",
        "test_list": ["assert f(1) == 1"],
        "challenge_test_list": [],
    }
    lines = [
        json.dumps(good),
        "[1, 2]",
        json.dumps({**good, "task_id": 2, "test_list": []}),
        json.dumps({**good, "task_id": 3, "code": "def g(:"}),
        json.dumps({**good, "task_id": 4}),
    ]
    path = tmp_path / "mbpp.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING):
        loaded = readers.read_mbpp(path)
    assert [p.task_id for p in loaded.records] == [1, 4]
    assert [i.line for i in loaded.issues] == [2, 3, 4]
    assert "empty test_list" in loaded.issues[1].reason and "SyntaxError" in loaded.issues[2].reason
    assert f"{path}:2" in caplog.text  # logged, not silent


def _first_record(path) -> dict:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.loads(f.readline())


# Per reader: its file, and malformed variants of a good record with the reason each must be reported under.
MALFORMED = {
    "humaneval": (
        readers.read_humaneval,
        "humaneval/HumanEval.jsonl.gz",
        [
            (lambda r: {**r, "entry_point": 3}, "TypeError"),
            (lambda r: {k: v for k, v in r.items() if k != "test"}, "KeyError"),
        ],
    ),
    "humanevalfix": (
        readers.read_humanevalfix,
        "humanevalfix/humanevalpack.jsonl",
        [
            (lambda r: {**r, "buggy_solution": "    return (\n"}, "SyntaxError"),
            (lambda r: {k: v for k, v in r.items() if k != "bug_type"}, "KeyError"),
        ],
    ),
    "evalplus": (
        readers.read_evalplus,
        "evalplus/HumanEvalPlus.jsonl.gz",
        [
            (lambda r: {**r, "plus_input": [1, 2]}, "TypeError"),
            (lambda r: {**r, "base_input": "[[1], [2"}, "JSONDecodeError"),
            (lambda r: {**r, "atol": "tight"}, "ValueError"),
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_every_reader_reports_malformed_records_with_location_and_skips_them(
    name, data_dir, tmp_path, caplog
):
    read, rel, variants = MALFORMED[name]
    good = _first_record(data_dir / rel)
    lines = [json.dumps(good).encode(), b"[1, 2]", b'{"task_id": "cut', b'{"prompt": "\xff\xfe"}']
    lines += [json.dumps(bad(good)).encode() for bad, _ in variants]
    lines.append(json.dumps(good).encode())
    path = tmp_path / Path(rel).name  # same compression as upstream
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    with caplog.at_level(logging.WARNING):
        loaded = read(path)
    assert len(loaded.records) == 2 and loaded.records[0] == loaded.records[1]
    assert [i.line for i in loaded.issues] == list(range(2, len(lines)))
    reasons = ["expected a JSON object", "JSONDecodeError", "UnicodeDecodeError"] + [r for _, r in variants]
    for issue, reason in zip(loaded.issues, reasons, strict=True):
        assert reason in issue.reason and issue.path == str(path)
        assert str(issue) in caplog.text  # logged with file and line, not dropped silently
