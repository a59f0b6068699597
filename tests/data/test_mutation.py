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
        ("negated_condition", "if not (xs[i] > limit and i >= 0):"),
        ("index_off_by_one", "if xs[i + 1] > limit"),
    ],
)
def test_each_operator_makes_its_edit(op, expected):
    codes = [apply_edit(PROGRAM, e) for e in candidate_edits(PROGRAM, [op])]
    assert any(expected in c for c in codes), codes
    for c in codes:
        ast.parse(c)
        assert "# count the elements above the limit" in c  # edits keep the author's comments


def test_function_swaps_negations_and_computed_bounds():
    src = (
        "def f(words, k):\n"
        "    if not words:\n"
        "        return ''\n"
        "    best = max(w.lower() for w in words if w.startswith('a'))\n"
        "    return best[: len(best) - k]\n"
    )
    edits = {op: {apply_edit(src, e) for e in candidate_edits(src, [op])} for op in OPERATORS}
    assert any("    if words:" in c for c in edits["negated_condition"])  # `not x` -> `x`
    assert any("if not w.startswith('a')" in c for c in edits["negated_condition"])
    assert any("best = min(" in c for c in edits["wrong_function"])
    assert any("w.upper()" in c for c in edits["wrong_function"])
    assert any("w.endswith('a')" in c for c in edits["wrong_function"])
    assert {c.splitlines()[-1].strip() for c in edits["index_off_by_one"]} == {
        "return best[: len(best) - k + 1]",
        "return best[: len(best) - k - 1]",
    }
    for codes in edits.values():
        for c in codes:
            ast.parse(c)


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


def test_second_order_mutants_follow_the_single_edits():
    src = "def f(a, b):\n    c = a + 1\n    return c * b\n"
    singles = mutants(src, random.Random(0), 1000)
    both = mutants(src, random.Random(0), 1000, max_order=2)
    assert [m.code for m in both[: len(singles)]] == [m.code for m in singles]  # single edits come first
    pairs = both[len(singles) :]
    assert pairs and all("+" in m.operator and "; " in m.what for m in pairs)
    keys = [normalized(m.code) for m in both]
    assert len(set(keys)) == len(keys) and normalized(src) not in keys

    # two separate lines changed at once, which no single edit does
    def both_lines_changed(code: str) -> bool:
        lines, orig = code.splitlines(), src.splitlines()
        return len(lines) == 3 and lines[1] != orig[1] and lines[2] != orig[2]

    assert not any(both_lines_changed(m.code) for m in singles)
    assert any(both_lines_changed(m.code) for m in pairs)
    for m in pairs:
        a, b = m.operator.split("+")
        assert a in OPERATORS and b in OPERATORS
        ast.parse(m.code)
    with pytest.raises(ValueError, match="max_order"):
        mutants(src, random.Random(0), 1, max_order=3)
