from __future__ import annotations

import ast
import random

import pytest

from next_jax.data.mutation import OPERATORS, apply_edit, candidate_edits, mutants, normalized

PROGRAM = """def count_big(xs, limit):
    # count the elements above the limit
    total = 0
    for i in range(0, len(xs)):
        if xs[i] > limit and i >= 0:
            total += 1
            print(i, total)
    return total
"""


@pytest.mark.parametrize(
    "op,expected",
    [
        ("binary_operator", "total -= 1"),
        ("comparison", "xs[i] >= limit"),
        ("off_by_one_constant", "total = 1"),
        ("range_bound", "range(0, len(xs) + 1)"),
        ("wrong_variable", "if xs[i] > total"),
        ("swapped_arguments", "print(total, i)"),
        ("wrong_return", "return limit"),
    ],
)
def test_each_operator_makes_its_edit(op, expected):
    codes = [apply_edit(PROGRAM, e) for e in candidate_edits(PROGRAM, [op])]
    assert any(expected in c for c in codes), codes
    for c in codes:
        ast.parse(c)
        assert "# count the elements above the limit" in c  # edits keep the author's comments


def test_statement_operators_change_line_counts():
    dropped = [apply_edit(PROGRAM, e) for e in candidate_edits(PROGRAM, ["dropped_statement"])]
    assert dropped and all(c.count("\n") < PROGRAM.count("\n") for c in dropped)
    assert any("total += 1" not in c for c in dropped)
    dup = [apply_edit(PROGRAM, e) for e in candidate_edits(PROGRAM, ["duplicated_statement"])]
    assert any(c.count("total += 1") == 2 for c in dup)


def test_replacement_keeps_operator_precedence():
    src = "def f(a, b, c):\n    return a - b * c\n"
    inner = [e for e in candidate_edits(src, ["binary_operator"]) if e.what.startswith("b * c")]
    assert {apply_edit(src, e).splitlines()[1].strip() for e in inner} == {
        "return a - (b // c)",
        "return a - (b + c)",
    }
    for e in inner:
        tree = ast.parse(apply_edit(src, e)).body[0].body[0].value
        assert isinstance(tree.op, ast.Sub) and isinstance(tree.right, ast.BinOp)  # still a - (...)


def test_mutants_are_distinct_deterministic_and_differ_from_source():
    a = mutants(PROGRAM, random.Random(7), 12)
    b = mutants(PROGRAM, random.Random(7), 12)
    assert [m.code for m in a] == [m.code for m in b]
    keys = [normalized(m.code) for m in a]
    assert len(set(keys)) == len(keys) == 12 and normalized(PROGRAM) not in keys
    assert len({m.operator for m in a}) >= 6  # drawn across operators, not one kind
    assert set(m.operator for m in a) <= set(OPERATORS)


def test_unknown_operator_is_an_error():
    with pytest.raises(ValueError, match="unknown mutation operators"):
        candidate_edits(PROGRAM, ["nope"])


def test_non_ascii_source_positions():
    src = "def f(s):\n    t = 'é' + s  # é\n    return t[1:]\n"
    for e in candidate_edits(src):
        ast.parse(apply_edit(src, e))
