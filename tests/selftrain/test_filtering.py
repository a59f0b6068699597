"""The filter stage keeps passing samples only, with dedupe, a per-problem cap and accumulation."""

from __future__ import annotations

from next_jax.data.parsing import parse_completion
from next_jax.selftrain.filtering import FilterSettings, kept_records
from next_jax.selftrain.records import Sample


def sample(pid: str, it: int, idx: int, code: str) -> Sample:
    return Sample(pid, it, idx, "c", "ok", f"why {idx}", code, -1.0)


CODE_A = "def f(x):\n    return x + 1"
CODE_A2 = "def f(x):\n    return (x + 1)  # same program"
CODE_B = "def f(x):\n    return 1 + x"


def joined():
    return [
        (sample("p1", 0, 0, CODE_A), {"status": "pass"}),
        (sample("p1", 0, 1, CODE_A2), {"status": "pass"}),
        (sample("p1", 0, 2, CODE_B), {"status": "pass"}),
        (sample("p1", 0, 3, "def f(x):\n    return x"), {"status": "fail"}),
        (sample("p2", 0, 0, CODE_A), {"status": "timeout"}),
        (sample("p2", 1, 0, CODE_B), {"status": "pass"}),
    ]


PROMPTS = {(0, "p1"): "prompt p1 it0", (0, "p2"): "prompt p2 it0", (1, "p2"): "prompt p2 it1"}


def test_keeps_passing_deduped_with_their_exact_prompts():
    kept = kept_records(joined(), PROMPTS, FilterSettings(dedupe=True, max_per_problem=None))
    assert [(r["example_id"], r["iteration"], r["index"]) for r in kept] == [("p1", 0, 0), ("p1", 0, 2), ("p2", 1, 0)]
    assert kept[2]["prompt"] == "prompt p2 it1"
    parsed = parse_completion(kept[0]["target"], "f")
    assert parsed.ok and parsed.code == CODE_A and parsed.rationale == "why 0"


def test_no_dedupe_and_a_cap():
    kept = kept_records(joined(), PROMPTS, FilterSettings(dedupe=False, max_per_problem=2))
    assert [(r["example_id"], r["index"]) for r in kept] == [("p1", 0), ("p1", 1), ("p2", 0)]


def test_order_does_not_depend_on_input_order():
    settings = FilterSettings()
    assert kept_records(joined(), PROMPTS, settings) == kept_records(joined()[::-1], PROMPTS, settings)


def test_edit_answers_keep_their_fix_as_edits_of_the_buggy_program():
    buggy = {"p1": "def f(x):\n    return x - 1", "p2": "def f(x):\n    return x"}
    kept = kept_records(joined(), PROMPTS, FilterSettings(dedupe=True, max_per_problem=None), buggy)
    by_id = {k["id"]: k["target"] for k in kept}
    assert by_id["p1#0.0"] == "why 0\nFix: `return x - 1` -> `return x + 1`\n"
    for k in kept:
        parsed = parse_completion(k["target"], "f", buggy[k["example_id"]])
        assert parsed.ok and parsed.notes == ("edits",)
    # Without the buggy program (whole-program answers), targets hold the whole program.
    assert "```python" in kept_records(joined(), PROMPTS, FilterSettings())[0]["target"]


BUGGY_F = "def f(x):\n    y = x\n    return y - 1"


def test_quotes_the_fix_wants_every_changed_line_quoted():
    from next_jax.selftrain.filtering import quotes_the_fix

    fixed = "def f(x):\n    y = x\n    return y + 1"
    assert quotes_the_fix("`f(1)` returns 0, not 2. Line 3 must be `return y + 1`.", BUGGY_F, fixed)
    assert quotes_the_fix("It should read ` return y + 1 ` instead.", BUGGY_F, fixed)  # spaces inside ticks
    assert not quotes_the_fix("Line 3 must be `return y +* 1`.", BUGGY_F, fixed)  # garbled
    assert not quotes_the_fix("Line 3 must be return y + 1.", BUGGY_F, fixed)  # not quoted
    assert not quotes_the_fix("`return y + 1`", BUGGY_F, BUGGY_F)  # a fix that changes nothing
    two = "def f(x):\n    y = x + 2\n    return y + 1"
    assert not quotes_the_fix("Line 3 must be `return y + 1`.", BUGGY_F, two)  # one of two changes
    assert quotes_the_fix("`y = x + 2` and `return y + 1`.", BUGGY_F, two)
    # A deleted line is quoted by its old text.
    extra = "def f(x):\n    x = 0\n    return x + 1"
    assert not quotes_the_fix("Line 3 is right: `return x + 1`.", extra, "def f(x):\n    return x + 1")
    assert quotes_the_fix("Line 2 `x = 0` must go.", extra, "def f(x):\n    return x + 1")


def test_rationale_check_keeps_only_samples_that_state_their_fix():
    good = Sample("p1", 0, 1, "c", "ok", "Line 3 must be `return y + 1`.", "def f(x):\n    y = x\n    return y + 1",
                  -1.0)
    garbled = Sample("p1", 0, 0, "c", "ok", "Line 3 mum `ret y 1`.", "def f(x):\n    y = x\n    return y + 1", -1.0)
    unknown = Sample("p9", 0, 0, "c", "ok", "Line 3 must be `return y + 1`.", good.code, -1.0)
    rows = [(garbled, {"status": "pass"}), (good, {"status": "pass"}), (unknown, {"status": "pass"})]
    prompts = {(0, "p1"): "p", (0, "p9"): "p"}
    checked = FilterSettings(rationale_check="quotes_the_fix")
    # The garbled sample comes first and has the same fix: the check runs before the dedupe, so the good one stays.
    # A problem with no buggy program given is never kept under a check.
    assert [k["id"] for k in kept_records(rows, prompts, checked, originals={"p1": BUGGY_F})] == ["p1#0.1"]
    assert [k["id"] for k in kept_records(rows, prompts, FilterSettings())] == ["p1#0.0", "p9#0.0"]


def test_unknown_rationale_check_is_refused():
    import pytest

    with pytest.raises(ValueError, match="quotes_the_fix"):
        FilterSettings(rationale_check="quotes_fix")
