"""Trace renderers: the NExT inline format, the scratchpad ablation, plain source, and the registry."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import pathlib
import textwrap

import pytest

from next_jax.execution.render import RENDERERS, register_renderer, render, statement_anchors
from next_jax.execution.tracer import Trace, trace_call


def program(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


COUNT = program("""
    def count_evens(xs):
        n = 0
        for x in xs:
            if x % 2 == 0:
                n += 1
            else:
                pass
        return n
""")


def test_inline_format_exact_text_with_the_more_than_three_visits_rule():
    text = render(trace_call(COUNT, "count_evens([2, 4, 6, 8])"), COUNT, "inline")
    assert text == program("""
        def count_evens(xs):  # (0) xs=[2, 4, 6, 8]
            n = 0  # (1) n=0
            for x in xs:  # (2) x=2; (5) x=4; ...; (11) x=8
                if x % 2 == 0:
                    n += 1  # (4) n=1; (7) n=2; ...; (13) n=4
                else:
                    pass
            return n  # (16) __return__=4
    """)


def test_inline_shows_up_to_three_states_in_full():
    text = render(trace_call(COUNT, "count_evens([2, 3, 4])"), COUNT, "inline")
    lines = text.splitlines()
    assert lines[2] == "    for x in xs:  # (2) x=2; (5) x=3; (8) x=4"
    assert lines[4] == "            n += 1  # (4) n=1; (10) n=2"
    assert lines[6] == "            pass"  # executed, but changed nothing


def test_inline_shows_the_exception_at_its_line():
    src = program("""
        def mean(xs):
            total = sum(xs)
            return total / len(xs)
    """)
    assert render(trace_call(src, "mean([])"), src, "inline") == program("""
        def mean(xs):  # (0) xs=[]
            total = sum(xs)  # (1) total=0
            return total / len(xs)  # (3) __exception__=ZeroDivisionError('division by zero')
    """)


MULTI = program('''
    import functools

    @functools.lru_cache(maxsize=None)
    def fib(n):
        if n < 2:
            return n
        return (fib(n - 1) +
                fib(n - 2))

    def run(k,
            scale):
        values = [fib(i) for i in
                  range(k)]
        s = """x
    y"""
        return [v * scale
                for v in values]
''')


def test_multi_line_statements_carry_their_comment_on_their_last_line_and_stay_valid_python():
    text = render(trace_call(MULTI, "run(4, 10)"), MULTI, "inline")
    compile(text, "<rendered>", "exec")
    lines = text.splitlines()
    commented = {i + 1 for i, line in enumerate(lines) if "  # (" in line}
    assert commented == {4, 6, 8, 11, 13, 15, 17}
    assert lines[10] == "        scale):  # (0) k=4, scale=10"
    assert lines[3].startswith("def fib(n):  # (") and "n=0" in lines[3]  # the call sits on the def line
    assert lines[12].endswith("values=[0, 1, 1, 2]")
    assert lines[14].startswith('y"""  # (') and lines[14].endswith("s='x\\ny'")
    assert lines[16].endswith("__return__=[0, 10, 10, 20]")


def test_statement_anchors():
    anchors = statement_anchors(MULTI)
    assert anchors[3] == anchors[4] == 4  # decorator and def header
    assert anchors[10] == anchors[11] == 11
    assert anchors[12] == anchors[13] == 13
    assert anchors[5] == 5 and 2 not in anchors  # a blank line belongs to no statement
    assert statement_anchors("def broken(:\n") == {}


def test_truncated_inline_trace_says_so():
    trace = trace_call(COUNT, "count_evens(list(range(100)))", max_events=6)
    text = render(trace, COUNT, "inline")
    lines = text.splitlines()
    assert lines[-1] == "# (trace truncated)"
    assert [line.split("  # ")[0] for line in lines[:-1]] == COUNT.splitlines()
    assert lines[2].endswith("# (2) x=0; (5) x=1")  # steps 0-5 were recorded, nothing after
    assert not any("(6)" in line for line in lines)


ADD = program("""
    def add_all(xs):
        total = 0
        for x in xs:
            total += x
        return total
""")


def test_scratchpad_exact_text():
    text = render(trace_call(ADD, "add_all([1, 2])"), ADD, "scratchpad")
    assert text == ADD + "\n" + program("""
        [step 0] line 1 call add_all: xs=[1, 2]
        [step 1] line 2: xs=[1, 2], total=0
        [step 2] line 3: xs=[1, 2], total=0, x=1
        [step 3] line 4: xs=[1, 2], total=1, x=1
        [step 4] line 3: xs=[1, 2], total=1, x=2
        [step 5] line 4: xs=[1, 2], total=3, x=2
        [step 6] line 3: xs=[1, 2], total=3, x=2
        [step 7] line 5: xs=[1, 2], total=3, x=2
        [step 8] line 5 return add_all: xs=[1, 2], total=3, x=2, __return__=3
        [result] return 3
    """).rstrip("\n")


def test_scratchpad_keeps_each_frames_state_apart_and_indents_by_depth():
    src = program("""
        def fact(n):
            if n <= 1:
                return 1
            return n * fact(n - 1)
    """)
    text = render(trace_call(src, "fact(2)"), src, "scratchpad")
    steps = text.split("\n\n", 1)[1].splitlines()
    assert steps[0] == "[step 0] line 1 call fact: n=2"
    assert "  [step 2] line 1 call fact: n=1" in steps
    assert "  [step 5] line 3 return fact: n=1, __return__=1" in steps
    assert steps[-2] == "[step 7] line 4 return fact: n=2, __return__=2"  # the outer frame's own n
    assert steps[-1] == "[result] return 2"


def test_scratchpad_reports_exceptions_and_truncation():
    text = render(trace_call(ADD, "add_all([1, 'a'])"), ADD, "scratchpad")
    assert text.endswith("[result] exception TypeError: unsupported operand type(s) for +=: 'int' and 'str'"
                         " (line 4)")
    cut = render(trace_call(ADD, "add_all(list(range(50)))", max_events=4), ADD, "scratchpad")
    assert cut.endswith("[result] return 1225\n[truncated]")


def test_none_format_is_the_plain_source():
    assert render(trace_call(ADD, "add_all([1])"), ADD, "none") == ADD


def test_rendering_a_trace_that_went_through_json_is_identical():
    trace = trace_call(COUNT, "count_evens([2, 4, 6, 8, 9])")
    copy = Trace.from_json(json.loads(json.dumps(trace.to_json())))
    for fmt in ("inline", "scratchpad", "none"):
        assert render(copy, COUNT, fmt) == render(trace, COUNT, fmt)


def test_registry():
    assert {"inline", "scratchpad", "none"} <= set(RENDERERS)

    @register_renderer("step_count_for_test")
    def step_count(trace: Trace, source: str) -> str:
        return str(len(trace.steps))

    try:
        assert render(trace_call(ADD, "add_all([])"), ADD, "step_count_for_test") == "5"
        with pytest.raises(ValueError, match="already registered"):
            register_renderer("step_count_for_test")(step_count)
    finally:
        del RENDERERS["step_count_for_test"]
    with pytest.raises(ValueError, match="unknown trace format"):
        render(trace_call(ADD, "add_all([])"), ADD, "nope")


def _mbpp_rows() -> list[dict]:
    root = pathlib.Path(os.environ.get("NEXT_JAX_DATA", pathlib.Path(__file__).resolve().parents[3] / "shared" / "data"))
    path = root / "mbpp" / "mbpp.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not found (set NEXT_JAX_DATA)")
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_every_mbpp_reference_solution_traces_and_renders_as_valid_python():
    rows = _mbpp_rows()
    failures = []
    with contextlib.redirect_stdout(io.StringIO()):  # a few solutions print
        for row in rows:
            test = ast.parse(row["test_list"][0]).body[0].test
            call = ast.unparse(test.left if isinstance(test, ast.Compare) else test)
            namespace: dict = {}
            if row["test_setup_code"]:
                exec(row["code"] + "\n" + row["test_setup_code"], namespace)
            trace = trace_call(row["code"], call, namespace=namespace)
            text = render(trace, row["code"], "inline")
            try:
                compile(text, "<rendered>", "exec")
            except SyntaxError as e:
                failures.append((row["task_id"], str(e)))
            assert render(trace, row["code"], "scratchpad").startswith(row["code"].rstrip("\r\n"))
            if trace.exception is None and not trace.truncated:
                assert "__return__=" in text, row["task_id"]
    assert len(rows) == 974 and failures == []
