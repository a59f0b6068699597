"""The execution tracer: what it records, where, in which order, and within which budgets."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from next_jax.execution.tracer import Step, Trace, TraceException, trace_call, trace_code

pytestmark = pytest.mark.usefixtures("each_tracer_implementation")


def program(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def steps_of(trace: Trace, *, event: str | None = None, func: str | None = None) -> list[Step]:
    return [s for s in trace.steps if (event is None or s.event == event) and (func is None or s.func == func)]


def changed(trace: Trace, name: str) -> list[tuple[int, str]]:
    """(line, value) of every step that set `name`, in order."""
    return [(s.line, s.changes[name]) for s in trace.steps if name in s.changes]


ADD = program("""
    def add_all(xs):
        total = 0
        for x in xs:
            total += x
        return total
""")


def test_simple_function_records_every_step_in_order():
    trace = trace_call(ADD, "add_all([1, 2])")
    got = [(s.step, s.line, s.event, s.changes) for s in trace.steps]
    assert got == [
        (0, 1, "call", {"xs": "[1, 2]"}),
        (1, 2, "line", {"total": "0"}),
        (2, 3, "line", {"x": "1"}),
        (3, 4, "line", {"total": "1"}),
        (4, 3, "line", {"x": "2"}),
        (5, 4, "line", {"total": "3"}),
        (6, 3, "line", {}),  # the loop test that ends the loop
        (7, 5, "line", {}),
        (8, 5, "return", {"__return__": "3"}),
    ]
    assert trace.returned == "3" and trace.exception is None and not trace.truncated
    assert all(s.func == "add_all" and s.depth == 0 and s.frame == 0 for s in trace.steps)


def test_changes_are_attributed_to_the_line_that_ran():
    src = program("""
        def f():
            a = 1
            b = a + 1
            a = b * 10
            return a
    """)
    trace = trace_call(src, "f()")
    assert changed(trace, "a") == [(2, "1"), (4, "20")]
    assert changed(trace, "b") == [(3, "2")]


def test_in_place_mutation_shows_up_on_the_mutating_line_and_through_aliases():
    src = program("""
        def f(xs):
            ys = xs
            ys.append(3)
            grow(xs)
            xs[0] = 1.0
            return len(xs)

        def grow(zs):
            zs.extend([4, 5])
    """)
    trace = trace_call(src, "f([1])")
    assert changed(trace, "xs") == [(1, "[1]"), (3, "[1, 3]"), (4, "[1, 3, 4, 5]"), (5, "[1.0, 3, 4, 5]")]
    assert changed(trace, "ys")[1:] == [(3, "[1, 3]"), (4, "[1, 3, 4, 5]"), (5, "[1.0, 3, 4, 5]")]
    assert changed(trace, "zs") == [(8, "[1, 3]"), (9, "[1, 3, 4, 5]")]


def test_rebinding_to_an_equal_value_is_not_a_change():
    src = program("""
        def f():
            x = [1, 2]
            x = [1, 2]
            return 0
    """)
    assert changed(trace_call(src, "f()"), "x") == [(2, "[1, 2]")]


def test_recursion_records_depths_and_separate_frames():
    src = program("""
        def fact(n):
            if n <= 1:
                return 1
            return n * fact(n - 1)
    """)
    trace = trace_call(src, "fact(3)")
    calls = steps_of(trace, event="call")
    assert [(s.changes["n"], s.depth) for s in calls] == [("3", 0), ("2", 1), ("1", 2)]
    assert len({s.frame for s in calls}) == 3
    returns = steps_of(trace, event="return")
    assert [(s.changes["__return__"], s.depth) for s in returns] == [("1", 2), ("2", 1), ("6", 0)]
    assert [s.step for s in trace.steps] == list(range(len(trace.steps)))
    assert trace.returned == "6"


def test_exception_is_recorded_at_its_line_and_in_the_result():
    src = program("""
        def ratio(a, b):
            c = a + 1
            return c / b

        def outer(a):
            return ratio(a, 0)
    """)
    trace = trace_call(src, "outer(1)")
    raised = steps_of(trace, event="exception")
    assert [(s.line, s.func, s.changes) for s in raised] == [
        (3, "ratio", {"__exception__": "ZeroDivisionError('division by zero')"}),
        (6, "outer", {"__exception__": "ZeroDivisionError('division by zero')"}),  # passing through
    ]
    assert not steps_of(trace, event="return")  # unwinding is not a return
    assert trace.exception == TraceException("ZeroDivisionError", "division by zero", 3)
    assert trace.returned is None


def test_caught_exception_is_a_step_and_the_call_still_returns():
    src = program("""
        def parse(s):
            try:
                n = int(s)
            except ValueError as e:
                n = -1
            return n
    """)
    trace = trace_call(src, "parse('x')")
    assert [s.event for s in trace.steps if s.line == 3] == ["line", "exception"]
    assert changed(trace, "n") == [(5, "-1")]
    assert changed(trace, "e") == [(4, "ValueError(\"invalid literal for int() with base 10: 'x'\")")]
    assert trace.returned == "-1" and trace.exception is None


def test_errors_outside_the_program_and_before_the_call():
    missing = trace_call(ADD, "no_such_function()")
    assert missing.exception == TraceException("NameError", "name 'no_such_function' is not defined", None)
    assert missing.steps == ()
    broken = trace_call("import no_such_module_xyz\n", "f()")
    assert broken.exception is not None and broken.exception.type == "ModuleNotFoundError"
    assert broken.exception.line == 1
    exits = trace_call("def f():\n    raise SystemExit(3)\n", "f()")
    assert exits.exception == TraceException("SystemExit", "3", 2)


def test_syntax_errors_are_raised():
    with pytest.raises(SyntaxError):
        trace_call("def f(:\n    pass\n", "f()")
    with pytest.raises(SyntaxError):
        trace_call(ADD, "add_all(")


def test_event_budget_truncates_but_the_call_runs_to_completion():
    src = program("""
        import sys

        def f(n):
            total = 0
            for i in range(n):
                total += i
            return total, sys.gettrace() is None
    """)
    trace = trace_call(src, "f(100_000)", max_events=50)
    assert trace.truncated and len(trace.steps) == 50
    assert trace.returned == f"({sum(range(100_000))}, True)"  # and the tracer was gone while it ran
    full = trace_call(src, "f(3)")
    assert not full.truncated and full.returned == "(3, False)"


def test_byte_budget_truncates_on_rendered_size():
    src = program("""
        def f(n):
            s = ''
            for i in range(n):
                s = s + 'x' * 50
            return len(s)
    """)
    trace = trace_call(src, "f(200)", max_bytes=2_000)
    assert trace.truncated and trace.returned == "10000"
    assert sum(len(v) for s in trace.steps for v in s.changes.values()) <= 2_000
    assert not trace_call(src, "f(3)", max_bytes=2_000).truncated


def test_values_are_rendered_safely():
    src = program("""
        class Loud:
            def __init__(self):
                self.v = 1
            def __repr__(self):
                raise RuntimeError('never call me')

        def f():
            big = 10 ** 5000
            me = [1]
            me.append(me)
            obj = Loud()
            return big
    """)
    trace = trace_call(src, "f()")
    assert changed(trace, "big") == [(8, "<int with 5001 digits>")]
    assert changed(trace, "me")[-1] == (10, "[1, [...]]")
    assert changed(trace, "obj") == [(11, "Loud(v=1)")]
    assert trace.returned == "<int with 5001 digits>"


def test_only_the_programs_own_code_is_traced():
    src = program("""
        import collections, json, heapq
        LIMIT = sum(range(5))

        def f(words):
            counts = collections.Counter(words)
            text = json.dumps(sorted(counts))
            heap = list(counts.values())
            heapq.heapify(heap)
            return text
    """)
    trace = trace_call(src, "f(['a', 'b', 'a'])")
    n_lines = len(src.splitlines())
    assert {s.func for s in trace.steps} == {"f"}
    assert all(4 <= s.line <= n_lines for s in trace.steps)  # no module-level lines, no stdlib lines
    assert changed(trace, "counts") == [(5, "Counter({'a': 2, 'b': 1})")]


def test_comprehensions_and_generators_are_nested_frames():
    src = program("""
        def f(xs):
            doubled = [x * 2 for x in xs]
            total = sum(y for y in doubled)
            return list(gen(total))

        def gen(n):
            yield n
            yield n + 1
    """)
    trace = trace_call(src, "f([1, 2])")
    comp = steps_of(trace, func="f.<locals>.<listcomp>")
    assert [s.changes for s in comp if s.changes] == [{"x": "1"}, {"x": "2"}]
    assert {s.line for s in comp} == {2} and {s.depth for s in comp} == {1}
    assert all(".0" not in s.changes for s in trace.steps)
    assert [s.changes for s in steps_of(trace, func="f.<locals>.<genexpr>") if s.changes] == [
        {"y": "2"}, {"y": "4"}]
    assert changed(trace, "doubled") == [(2, "[2, 4]")]
    yields = steps_of(trace, event="yield")
    assert [(s.line, s.changes) for s in yields] == [(7, {"__yield__": "6"}), (8, {"__yield__": "7"})]
    assert len({s.frame for s in steps_of(trace, func="gen")}) == 1  # resumed, not re-entered
    assert trace.returned == "[6, 7]"


def test_lambdas_run_untraced_as_part_of_their_line():
    src = program("""
        def f(pairs):
            pairs.sort(key=lambda p: p[1])
            pick = lambda p: p[0] / p[1]
            return pick(pairs[0])
    """)
    trace = trace_call(src, "f([(1, 2), (3, 0)])")
    assert {s.func for s in trace.steps} == {"f"}
    assert changed(trace, "pairs")[-1] == (2, "[(3, 0), (1, 2)]")
    assert trace.exception == TraceException("ZeroDivisionError", "division by zero", 3)


def test_nested_functions_and_methods_of_program_classes():
    src = program("""
        class Counter:
            def __init__(self):
                self.n = 0
            def bump(self):
                self.n += 1
                return self.n

        def f():
            c = Counter()
            def twice():
                c.bump()
                return c.bump()
            return twice()
    """)
    trace = trace_call(src, "f()")
    calls = [(s.func, s.depth) for s in steps_of(trace, event="call")]
    assert calls == [("f", 0), ("Counter.__init__", 1), ("f.<locals>.twice", 1), ("Counter.bump", 2),
                     ("Counter.bump", 2)]
    assert changed(trace, "self")[-1] == (5, "Counter(n=2)")
    assert trace.returned == "2"


def test_multi_line_statements_record_their_change_once():
    src = program("""
        def f(a):
            x = max(a,
                    2)
            return x
    """)
    trace = trace_call(src, "f(1)")
    assert changed(trace, "x") == [(2, "2")]
    assert {s.line for s in steps_of(trace, event="line")} <= {2, 3, 4}


def test_previous_trace_function_is_restored():
    def previous(frame, event, arg):
        return None

    original = sys.gettrace()
    sys.settrace(previous)
    try:
        trace_call(ADD, "add_all([1])")
        trace_call(ADD, "add_all(list(range(100)))", max_events=5)
        assert sys.gettrace() is previous
    finally:
        sys.settrace(original)


def test_given_namespace_is_used():
    namespace = {"OFFSET": 10}
    trace = trace_call("def f(x):\n    return x + OFFSET\n", "f(1)", namespace=namespace)
    assert trace.returned == "11" and "f" in namespace


def test_json_round_trip():
    trace = trace_call(ADD, "add_all([1, 2])")
    data = json.loads(json.dumps(trace.to_json()))
    assert set(data) == {"steps", "result", "truncated"}
    assert data["result"] == {"return": "3"}
    assert data["steps"][0] == {"step": 0, "line": 1, "event": "call", "func": "add_all", "depth": 0,
                                "frame": 0, "changes": {"xs": "[1, 2]"}}
    assert Trace.from_json(data) == trace
    failed = trace_call(ADD, "add_all([1, 'a'])")
    data = json.loads(json.dumps(failed.to_json()))
    assert data["result"] == {"exception": {"type": "TypeError", "line": 4,
                                            "message": "unsupported operand type(s) for +=: 'int' and 'str'"}}
    assert Trace.from_json(data) == failed


def test_runaway_recursion_ends_as_a_recorded_error_with_tracing_restored():
    src = "def deep(n):\n    return 1 + deep(n + 1)\n"
    before = sys.gettrace()
    trace = trace_call(src, "deep(0)")
    assert trace.exception is not None and trace.exception.type == "RecursionError"
    assert trace.exception.line in (1, 2)  # raised entering deep(), or in its body
    assert sys.gettrace() is before
    depths = [s.depth for s in steps_of(trace, event="call")]
    assert depths == list(range(len(depths))) and len(depths) > 100


def test_trace_code_takes_precompiled_program_and_call():
    code = compile(ADD, "<candidate>", "exec")
    call = compile("add_all([4, 5])", "<harness>", "eval")
    assert trace_code(code, call) == trace_call(ADD, "add_all([4, 5])")
