from __future__ import annotations

import pytest

from next_jax.data.parsing import (
    PARSE_EMPTY,
    PARSE_MISSING_ENTRY_POINT,
    PARSE_NO_CODE,
    PARSE_OK,
    PARSE_STATUSES,
    PARSE_TRUNCATED,
    parse_completion,
)
from next_jax.data.prompts import format_target

FIX = "def f(x):\n    return x + 1"


def test_target_round_trips():
    rationale = "The trace shows `x=1` but the result is 1.\nIt must add one."
    p = parse_completion(format_target(rationale, FIX), "f")
    assert (p.status, p.rationale, p.code, p.notes) == (PARSE_OK, rationale, FIX, ())


def test_several_fences_take_the_last_defining_the_entry_point():
    text = (
        "Draft:\n```python\ndef f(x):\n    return x\n```\nExample:\n```python\nprint(f(1))\n```\n"
        f"Corrected:\n```python\n{FIX}\n```\n"
    )
    p = parse_completion(text, "f")
    assert p.ok and p.code == FIX and "several_fences" in p.notes
    assert p.rationale.startswith("Draft:") and p.rationale.endswith("Corrected:")


def test_prose_after_the_fence_is_ignored():
    p = parse_completion(f"Because.\n```\n{FIX}\n```\nThis passes all tests.", "f")
    assert p.ok and p.code == FIX and p.notes == ("text_after_code",)


def test_no_fence_recovers_code_and_drops_trailing_prose():
    p = parse_completion(f"The loop is off by one.\n{FIX}\nThat fixes it.", "f")
    assert p.ok and p.code == FIX and p.notes == ("unfenced",) and p.rationale == "The loop is off by one."


def test_truncated_fence_parses_when_complete_and_fails_when_cut():
    ok = parse_completion(f"Why.\n```python\n{FIX}\n", "f")
    assert ok.ok and ok.code == FIX and ok.notes == ("unclosed_fence",)
    cut = parse_completion("Why.\n```python\ndef f(x):\n    return (x +", "f")
    assert cut.status == PARSE_TRUNCATED and cut.code == "" and cut.rationale == "Why."
    assert parse_completion("Why.\n```python\n", "f").status == PARSE_TRUNCATED


def test_failures_have_distinct_statuses():
    assert parse_completion("  \n", "f").status == PARSE_EMPTY
    assert parse_completion("I think the bug is in the loop.", "f").status == PARSE_NO_CODE
    assert (
        parse_completion("```python\ndef g(x):\n    return x\n```", "f").status == PARSE_MISSING_ENTRY_POINT
    )
    assert parse_completion("def g(x):\n    return x\n", "f").status == PARSE_MISSING_ENTRY_POINT
    assert len(set(PARSE_STATUSES)) == len(PARSE_STATUSES) == 5 and PARSE_OK not in PARSE_STATUSES


@pytest.mark.parametrize("entry", [None, "f"])
def test_entry_point_optional(entry):
    p = parse_completion(f"```python\nimport math\n\n{FIX}\n```", entry)
    assert p.ok and p.code.startswith("import math")
