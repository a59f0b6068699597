"""Line-edit answers: gold targets round-trip through the parser, and bad edits get their own statuses."""

from __future__ import annotations

import dataclasses

import pytest

from next_jax.data import edits
from next_jax.data.parsing import (
    PARSE_EDIT_MISMATCH,
    PARSE_MISSING_ENTRY_POINT,
    PARSE_TRUNCATED,
    parse_completion,
)
from next_jax.data.prompts import format_target
from next_jax.data.rendering import PromptRenderer, RepairDataConfig
from next_jax.data.synthetic import failure_rationale, generate_synthetic

BUGGY = "def f(m):\n    out = 1\n    for k in range(m + 1, 3):\n        out *= k\n    return out"
FIXED = "def f(m):\n    out = 1\n    for k in range(3, m + 1):\n        out *= k\n    return out"


def round_trip(buggy: str, fixed: str) -> str:
    target = format_target("`f(8)` returns 1, not 20160.", fixed, buggy=buggy)
    parsed = parse_completion(target, "f", buggy)
    assert parsed.ok and parsed.notes == ("edits",), (target, parsed)
    assert parsed.code == fixed.strip("\n")
    assert parsed.rationale == "`f(8)` returns 1, not 20160."
    return target


def test_replacement_keeps_the_old_lines_indentation():
    target = round_trip(BUGGY, FIXED)
    assert target.endswith("Fix: `for k in range(m + 1, 3):` -> `for k in range(3, m + 1):`\n")
    assert "```" not in target


def test_deletion_of_a_duplicated_line_and_an_insertion():
    dup = "def f(m):\n    out = 0\n    out += m\n    out += m\n    return out"
    assert round_trip(dup, "def f(m):\n    out = 0\n    out += m\n    return out").count("\n") == 2
    dropped = "def f(xs):\n    for x in xs:\n        total += x\n    return total"
    target = round_trip(dropped, "def f(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total")
    assert "Add: `    total = 0`" in target


def test_several_hunks_apply_in_order():
    buggy = "def f(a, b):\n    x = a - b\n    y = x * 2\n    z = y\n    return z + 1"
    round_trip(buggy, "def f(a, b):\n    x = a + b\n    y = x * 2\n    z = y\n    return z - 1")


@pytest.mark.parametrize("fixed", [
    "def f(m):\n    out = 1\n    for k in range(3, m + 1):\n      out *= k\n    return out",  # re-indented
    BUGGY,  # nothing to change
])
def test_inexpressible_fixes_fall_back_to_the_whole_program(fixed):
    assert edits.edits_between(BUGGY, fixed) is None
    target = format_target("why", fixed, buggy=BUGGY)
    assert "```python" in target and "Fix: `" not in target
    assert parse_completion(target, "f", BUGGY).code == fixed


@pytest.mark.parametrize("tail, status", [
    ("Fix: `for k in range(m + 1, 3):` -> `for k in ran", PARSE_TRUNCATED),
    ("Fix: `for k in range(m, 3):` -> `for k in range(3, m):`", PARSE_EDIT_MISMATCH),  # not a line of it
    ("Add: `    out = 2`", PARSE_EDIT_MISMATCH),  # nothing to add after
    ("Fix: `def f(m):` -> `def g(m):`", PARSE_MISSING_ENTRY_POINT),
    ("Fix: broken\nFix: `out = 1` -> `out = 2`", PARSE_EDIT_MISMATCH),
])
def test_bad_edits_get_a_status_and_no_code(tail, status):
    parsed = parse_completion(f"Because.\n{tail}", "f", BUGGY)
    assert (parsed.status, parsed.code, parsed.rationale) == (status, "", "Because.")


def test_edits_need_the_buggy_program_and_a_fenced_program_wins():
    text = "Because.\nFix: `out = 1` -> `out = 2`"
    assert not parse_completion(text, "f").ok  # without the buggy program an edit is not a fix
    fenced = f"Because.\n```python\n{FIXED}\n```\nFix: `out = 1` -> `out = 2`"
    assert parse_completion(fenced, "f", BUGGY).code == FIXED


def test_an_edited_line_is_not_matched_twice():
    buggy = "def f(x):\n    x = x + 1\n    x = x + 1\n    return x"
    text = "Fix: `x = x + 1` -> `x = x + 2`\nFix: `x = x + 1` -> `x = x + 3`"
    assert parse_completion(text, "f", buggy).code == "def f(x):\n    x = x + 2\n    x = x + 3\n    return x"


def test_gold_targets_of_synthetic_examples_round_trip_as_edits():
    examples = generate_synthetic(60, "train", seed=3)
    config = RepairDataConfig(root="", trace_cache_dir=None, prompt_budget=4096, max_traced_tests=1,
                              few_shot=False, untrusted_tracer="in_process", budgets=(("max_events", 10_000),),
                              pool_workers=1, pool_timeout=5.0, synthetic_seed=0, synthetic_sizes=(),
                              answer="edits")
    renderer = PromptRenderer(config)
    as_edits = 0
    for ex in examples:
        target = renderer.target(ex)
        meta = renderer.meta(ex)
        assert meta["buggy_code"] == ex.buggy_code
        parsed = parse_completion(target, ex.entry_point, meta["buggy_code"])
        assert parsed.ok and parsed.code == ex.reference.strip("\n"), target
        if parsed.notes == ("edits",):
            as_edits += 1
            # The fix sentence ("Line N must be ...") is left to the edits; the failure stays.
            assert parsed.rationale == failure_rationale(ex.rationale, ex.buggy_code, ex.reference)
            assert "Line " not in parsed.rationale and parsed.rationale.startswith("It ")
    assert as_edits >= 0.9 * len(examples)
    program = dataclasses.replace(config, answer="program")
    assert "```python" in PromptRenderer(program).target(examples[0])
    assert "buggy_code" not in PromptRenderer(program).meta(examples[0])
    with pytest.raises(ValueError, match="answer"):
        dataclasses.replace(config, answer="diff")
