from __future__ import annotations

import pytest

from next_jax.data.example import (
    Provenance,
    RepairExample,
    iter_jsonl,
    read_examples,
    write_examples,
    write_jsonl,
)


def _ex(**kw) -> RepairExample:
    base = dict(
        id="x/1",
        problem_id="x",
        description="add one",
        buggy_code="def f(x):\n    return x\n",
        entry_point="f",
        tests=("assert f(1) == 2",),
        hidden_tests=("assert f(1) == 2", "assert f(5) == 6"),
        reference="def f(x):\n    return x + 1\n",
        failing_tests=(0,),
        failure_type="assertion",
        provenance=Provenance("mbpp", "mutation", "wrong_return", "x + 1 -> x"),
    )
    base.update(kw)
    return RepairExample(**base)


@pytest.mark.parametrize("name", ["a.jsonl", "a.jsonl.gz"])
def test_examples_round_trip_through_jsonl(tmp_path, name):
    exs = [_ex(), _ex(id="x/2", reference=None, hidden_tests=())]
    assert write_examples(tmp_path / name, exs) == 2
    back = read_examples(tmp_path / name)
    assert back == exs
    assert back[1].verdict_tests == back[1].tests  # no hidden tests: the visible ones decide
    assert back[0].verdict_tests == back[0].hidden_tests


def test_failing_tests_must_index_tests():
    with pytest.raises(ValueError, match="out of range"):
        _ex(failing_tests=(3,))


def test_unknown_fields_are_rejected():
    d = _ex().to_json()
    d["extra"] = 1
    with pytest.raises(ValueError, match="extra"):
        RepairExample.from_json(d)


def test_bad_json_line_names_file_and_line(tmp_path):
    p = tmp_path / "b.jsonl"
    write_jsonl(p, [{"a": 1}])
    p.write_text(p.read_text() + "{not json\n")
    it = iter_jsonl(p)
    assert next(it) == {"a": 1}
    with pytest.raises(ValueError, match=r"b\.jsonl:2"):
        next(it)
