from __future__ import annotations

import re

import pytest

from next_jax.data.example import Provenance, RepairExample
from next_jax.data.exemplars import EXEMPLARS, few_shot_prefix
from next_jax.data.parsing import parse_completion
from next_jax.data.prompts import (
    build_prompt,
    call_of_test,
    format_target,
    in_process_tracer,
    program_pair,
    reading_pair,
    shorten_loops,
)
from next_jax.data.trace_cache import TraceCache
from next_jax.execution.render import render
from next_jax.execution.tracer import Trace, trace_call

BUGGY = """def running_max(xs):
    best = 0
    out = []
    for x in xs:
        if x > best:
            best = x
        out.append(best)
    return out
"""
FIXED = BUGGY.replace("best = 0\n", "best = xs[0] if xs else 0\n")
EX = RepairExample(
    id="t/1",
    problem_id="t",
    description="Return the running maximum of a list of integers.",
    buggy_code=BUGGY,
    entry_point="running_max",
    tests=(
        "assert running_max([-3, -1, -2]) == [-3, -1, -1]",
        "assert running_max([1, 5, 2]) == [1, 5, 5]",
        "assert running_max(list(range(-30, -20))) == list(range(-30, -20))",
        "assert running_max([-5] * 12) == [-5] * 12",
    ),
    hidden_tests=(),
    reference=FIXED,
    failing_tests=(0, 2, 3),
    failure_type="assertion",
    provenance=Provenance("test", "human"),
)
TRACER = in_process_tracer()


def _trace(call: str) -> dict:
    return trace_call(BUGGY, call).to_json()


def test_test_call_extracts_the_outermost_entry_point_call():
    assert call_of_test("assert f(g(1), f(2)) == 3", "f") == "f(g(1), f(2))"
    assert call_of_test("assert abs(f(1.0) - 2) < 1e-6", "f") == "f(1.0)"
    assert call_of_test("def check(c):\n    assert c(1)\ncheck(f)", "f") is None


def test_inline_prompt_layout():
    p = build_prompt(EX, "inline", tracer=TRACER)
    inline0 = render(Trace.from_json(_trace("running_max([-3, -1, -2])")), BUGGY, "inline")
    assert inline0.strip() in p.text
    assert p.text.index("### Task") < p.text.index("### Buggy program") < p.text.index("### Failing tests")
    assert p.text.endswith("### Answer\n")
    assert p.traced_tests == (0, 2, 3) and p.dropped_traces == () and not p.loops_shortened and p.fits
    # failing tests with what the buggy program returned; the passing test is not listed
    assert "assert running_max([-3, -1, -2]) == [-3, -1, -1]  # got: [0, 0, 0]" in p.text
    assert EX.tests[1] not in p.text
    assert p.text.count("### Trace of") == 2  # later tests get their own annotated copies


def test_notrace_and_scratchpad_variants():
    none = build_prompt(EX, "none", tracer=TRACER)
    assert BUGGY.strip() in none.text and "### Trace of" not in none.text and none.traced_tests == ()
    pad = build_prompt(EX, "scratchpad", tracer=TRACER)
    steps = render(Trace.from_json(_trace("running_max([-3, -1, -2])")), BUGGY, "scratchpad")
    assert steps.startswith(BUGGY.rstrip())  # the renderer repeats the program; the prompt shows it once
    assert steps[len(BUGGY.rstrip()) :].strip() in pad.text and pad.text.count(BUGGY.strip()) == 1
    with pytest.raises(ValueError):
        build_prompt(EX, "fancy")


def test_budget_drops_later_traces_then_shortens_loops_then_all_traces():
    full = build_prompt(EX, "scratchpad", tracer=TRACER)
    one = build_prompt(EX, "scratchpad", tracer=TRACER, budget=full.tokens - 1)
    assert one.traced_tests in ((0,), (0, 2)) and one.dropped_traces and not one.loops_shortened and one.fits
    assert "omitted to fit the length budget" in one.text
    only_first = build_prompt(
        EX,
        "scratchpad",
        tracer=TRACER,
        budget=build_prompt(EX, "scratchpad", tracer=TRACER, max_traced_tests=1).tokens - 1,
    )
    assert only_first.traced_tests == (0,) and only_first.loops_shortened and only_first.fits
    assert "Loops in the trace are shortened" in only_first.text
    tiny = build_prompt(EX, "scratchpad", tracer=TRACER, budget=50)
    assert tiny.traced_tests == () and not tiny.fits and tiny.dropped_traces == (0, 2, 3)
    for p in (one, only_first, tiny):  # never cut code or tests
        assert BUGGY.strip() in p.text or p is not tiny
        assert all(EX.tests[i] in p.text for i in EX.failing_tests)
    assert BUGGY.strip() in tiny.text


def test_shorten_loops_keeps_first_and_last_visit_per_line():
    t = _trace("running_max([-5] * 12)")
    short = shorten_loops(t)
    lines = [s["line"] for s in short["steps"] if s.get("event", "line") == "line"]
    assert max(lines.count(n) for n in set(lines)) <= 2
    assert len(short["steps"]) < len(t["steps"]) and short["result"] == t["result"]
    carried = shorten_loops(t, carry_changes=True)
    # the appended list's final value survives in the kept steps when changes are carried
    final_out = [s["changes"]["out"] for s in t["steps"] if "out" in s["changes"]][-1]
    assert any(s["changes"].get("out") == final_out for s in carried["steps"])


def test_prompt_and_target_round_trip_through_the_parser():
    rationale = "The trace shows `best=0` before the loop, so negative lists never update it."
    completion = format_target(rationale, FIXED)
    parsed = parse_completion(completion, EX.entry_point)
    assert parsed.ok and parsed.rationale == rationale and parsed.code == FIXED.strip()
    # a prompt followed by its target parses back to the same answer (the parser reads the completion only)
    p = build_prompt(EX, "inline", tracer=TRACER)
    whole = p.text + completion
    assert parse_completion(whole[len(p.text) :], EX.entry_point) == parsed


def _runs(code: str, test: str) -> bool:
    ns: dict = {}
    exec(code, ns)
    try:
        exec(test, ns)
    except Exception:  # noqa: BLE001
        return False
    return True


def test_exemplars_are_sound_and_cite_their_traces():
    assert len(EXEMPLARS) >= 3
    for ex in EXEMPLARS:
        test = ex.example.tests[0]
        assert not _runs(ex.example.buggy_code, test) and _runs(ex.fixed_code, test)
        call = call_of_test(test, ex.example.entry_point)
        rendered = render(trace_call(ex.example.buggy_code, call), ex.example.buggy_code, "inline")
        cited = re.findall(r"`(\w+=[^`]+)`", ex.rationale)
        assert cited, ex.example.id
        for c in cited:
            assert c in rendered, (ex.example.id, c, rendered)


def test_few_shot_prefix_holds_every_exemplar():
    prefix = few_shot_prefix("inline", TRACER)
    for ex in EXEMPLARS:
        assert ex.rationale in prefix and ex.fixed_code.strip() in prefix
    p = build_prompt(EX, "inline", tracer=TRACER, prefix=prefix)
    assert p.text.startswith(prefix) and p.tokens == len(p.text.encode())


def test_trace_cache_memoises_and_persists(tmp_path):
    calls = []

    def tracer(code, call):
        calls.append(call)
        return _trace(call)

    path = tmp_path / "traces.jsonl"
    cache = TraceCache(tracer, {"max_events": 10}, path)
    a = cache(BUGGY, "running_max([1, 2])")
    assert cache(BUGGY, "running_max([1, 2])") == a and calls == ["running_max([1, 2])"]
    assert (cache.hits, cache.misses) == (1, 1)
    with open(path, "a") as f:
        f.write('{"key": "torn')  # an interrupted write is skipped, not fatal
    reloaded = TraceCache(tracer, {"max_events": 10}, path)
    assert reloaded(BUGGY, "running_max([1, 2])") == a and len(calls) == 1
    other_budget = TraceCache(tracer, {"max_events": 11}, path)
    other_budget(BUGGY, "running_max([1, 2])")
    assert len(calls) == 2  # budgets are part of the key


def test_compact_layout_keeps_every_section_without_headers_or_fences():
    md = build_prompt(EX, "inline", tracer=TRACER, max_traced_tests=1, instruction=False)
    p = build_prompt(EX, "inline", tracer=TRACER, max_traced_tests=1, layout="compact")
    inline0 = render(Trace.from_json(_trace("running_max([-3, -1, -2])")), BUGGY, "inline")
    assert inline0.strip() in p.text
    assert "###" not in p.text and "```" not in p.text
    lines = p.text.splitlines()
    assert lines[0] == f"# Task: {EX.description}" and lines[-1] == "# Answer:"
    assert "# Buggy, traced on running_max([-3, -1, -2]):" in lines
    # every failing test with its actual output, in the same order as the markdown layout lists them
    fails = [ln for ln in lines if ln.startswith("# Fails: ")]
    assert fails == [f"# Fails: {ln}" for ln in md.text.splitlines() if ln.startswith("assert ")]
    assert p.tokens < md.tokens and p.traced_tests == md.traced_tests


def test_compact_notrace_differs_only_by_the_trace():
    traced = build_prompt(EX, "inline", tracer=TRACER, max_traced_tests=1, layout="compact", max_failing_shown=1)
    none = build_prompt(EX, "none", tracer=TRACER, layout="compact", max_failing_shown=1)
    assert BUGGY.strip() in none.text and "# (0)" not in none.text
    fails = [ln for ln in none.text.splitlines() if ln.startswith("# Fails: ")]
    assert fails == [ln for ln in traced.text.splitlines() if ln.startswith("# Fails: ")]
    assert fails == ["# Fails: assert running_max([-3, -1, -2]) == [-3, -1, -1]  # got: [0, 0, 0]"]


def test_max_failing_shown_lists_traced_tests_first():
    p = build_prompt(EX, "inline", tracer=TRACER, max_traced_tests=3, max_failing_shown=2)
    listed = [t for t in EX.tests if t in p.text.split("### Failing tests")[1]]
    assert listed == [EX.tests[0], EX.tests[2]]
    every = build_prompt(EX, "inline", tracer=TRACER)
    assert all(EX.tests[i] in every.text for i in EX.failing_tests)
    with pytest.raises(ValueError, match="layout"):
        build_prompt(EX, "inline", tracer=TRACER, layout="yaml")


@pytest.mark.parametrize("layout", ["compact", "markdown"])
def test_program_pairs_share_the_repair_prompts_layout_and_answer_form(layout):
    """Pretraining pairs open like a repair prompt of the same layout and end it the same way, and their
    target is exactly the tail of a repair target (header and fenced program), which parses back."""
    pair = program_pair(EX.description, FIXED, layout=layout)
    repair = build_prompt(EX, "inline", tracer=TRACER, max_traced_tests=1, layout=layout, instruction=False)
    assert pair["prompt"].splitlines()[0] == repair.text.splitlines()[0]
    assert pair["prompt"].endswith(repair.text.splitlines()[-1] + "\n")
    assert format_target("Some rationale.", FIXED).endswith(pair["target"])
    parsed = parse_completion(pair["target"], EX.entry_point)
    assert parsed.status == "ok" and parsed.code.strip() == FIXED.strip()
    with pytest.raises(ValueError):
        program_pair(EX.description, FIXED, layout="html")


@pytest.mark.parametrize("layout", ["compact", "markdown"])
def test_reading_pairs_show_the_traced_program_and_answer_with_it(layout):
    """A reading pair's prompt holds the program as a repair prompt would show it (annotated by its trace in
    the inline format, plain without traces) and its target is the program pair's: the program itself."""
    call = "running_max([1, 5, 2])"
    inline = reading_pair(EX.description, FIXED, call, "inline", tracer=TRACER, layout=layout)
    traced = render(Trace.from_json(trace_call(FIXED, call).to_json()), FIXED, "inline")
    assert traced.strip() in inline["prompt"] and call in inline["prompt"]
    assert inline["target"] == program_pair(EX.description, FIXED, layout=layout)["target"]
    plain = reading_pair(EX.description, FIXED, call, "none", tracer=TRACER, layout=layout)
    assert FIXED.strip() in plain["prompt"] and "# (0)" not in plain["prompt"] and call not in plain["prompt"]
    first = program_pair(EX.description, FIXED, layout=layout)["prompt"].splitlines()[0]
    assert inline["prompt"].splitlines()[0] == plain["prompt"].splitlines()[0] == first
    # over the budget, loops are shortened (the long call visits the loop body 40 times)
    long_call = "running_max(list(range(40)))"
    full = reading_pair(EX.description, FIXED, long_call, "inline", tracer=TRACER, layout=layout)
    short = reading_pair(EX.description, FIXED, long_call, "inline", tracer=TRACER, layout=layout, budget=300)
    assert len(short["prompt"]) < len(full["prompt"])
