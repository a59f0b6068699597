"""The C event loop (`_ctracer`) records exactly what the pure-Python recorder does, and changes nothing in
the traced program: same steps, result and truncation on awkward programs, budgets and all of MBPP's first
100 problems."""

from __future__ import annotations

import ast
import json
import os
import shutil
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from next_jax.data.readers import default_data_dir
from next_jax.execution import tracer
from next_jax.execution.tracer import trace_call

needs_c = pytest.mark.skipif("c" not in tracer.IMPLEMENTATIONS, reason="the C tracer was not built here")


def test_the_c_tracer_is_built_wherever_it_can_be():
    """The extension is optional, so a broken build would only show as slower tracing: fail loudly instead."""
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if shutil.which("cc") is None or not headers.exists():
        pytest.skip("no C compiler or Python headers here: the pure-Python recorder is the tracer")
    assert "c" in tracer.IMPLEMENTATIONS
    wanted = "python" if os.environ.get("NEXT_JAX_TRACER") == "python" else "c"
    assert tracer.default_implementation() == wanted  # the C recorder is the default wherever it exists


def program(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


AWKWARD = {
    "generator": ("""
        def gen(n):
            for i in range(n):
                got = yield i * i
                if got:
                    n += got
            return n

        def f():
            g = gen(3)
            out = [next(g), g.send(2)]
            out.extend(g)
            left = gen(5)
            next(left)  # left suspended
            return out
    """, "f()"),
    "exceptions": ("""
        def parse(s):
            return int(s)

        def f(items):
            ok, bad = [], 0
            for s in items:
                try:
                    ok.append(parse(s))
                except ValueError as e:
                    bad += 1
                    msg = str(e)
                finally:
                    last = s
            return ok, bad, {}[last]
    """, "f(['1', 'x', '3'])"),
    "closures_lambdas_comprehensions": ("""
        def make(k):
            def add(x):
                y = x + k
                return y
            return add

        def f(xs):
            add = make(10)
            ys = sorted(xs, key=lambda v: -v)
            sq = [add(v) for v in ys if v % 2]
            st = {v % 3 for v in xs}
            dc = {v: add(v) for v in xs[:2]}
            total = sum(v for v in xs)
            return sq, st, dc, total
    """, "f([3, 1, 4, 1, 5, 9, 2, 6])"),
    "classes_aliases_del_while": ("""
        class Box:
            def __init__(self, items):
                self.items = items

            def push(self, v):
                self.items.append(v)
                return len(self.items)

        def f(n):
            xs = []
            alias = xs
            b = Box(xs)
            while n:
                b.push(n)
                alias.append(-n)
                n -= 1
            tmp = xs[:]
            del tmp
            grid = [[0] * 3 for _ in range(3)]
            grid[1][2] = 7
            d = {"a": [1]}
            d["a"].append(2)
            return xs, grid, d
    """, "f(4)"),
    "recursion": ("""
        def fib(n):
            if n < 2:
                return n
            return fib(n - 1) + fib(n - 2)
    """, "fib(7)"),
    "odd_values": ("""
        class Loud:
            def __repr__(self):
                raise RuntimeError("no")

        def f():
            big = 10 ** 500
            me = []
            me.append(me)
            loud = Loud()
            text = "x" * 1000
            raw = b"y" * 1000
            neg = -(10 ** 8)
            return big % 7, len(me), text[:3], raw[:2], neg, 1.5, None, True, 3j
    """, "f()"),
    "uncaught": ("""
        def g(x):
            return 1 / x

        def f(x):
            y = x - 1
            return g(y)
    """, "f(1)"),
    "program_drops_the_tracer": ("""
        import sys

        def f(n):
            a = 1
            sys.settrace(None)
            b = a + n
            return b
    """, "f(2)"),
    "program_reinstalls_what_it_finds": ("""
        import sys

        def g(x):
            return x * 2

        def f(n):
            sys.settrace(sys.gettrace())  # the tracer itself differs, so it is kept out of the locals
            b = g(n + 1)
            return b
    """, "f(2)"),
}
BUDGETS = [{}, {"max_events": 5}, {"max_bytes": 40}, {"max_repr": 10}, {"max_events": 1}]


def _both(source: str, call: str, **budgets) -> dict[str, dict]:
    out = {}
    for impl in ("python", "c"):
        before = sys.gettrace()
        out[impl] = trace_call(source, call, implementation=impl, **budgets).to_json()
        assert sys.gettrace() is before
    return out


@needs_c
@pytest.mark.parametrize("budgets", BUDGETS, ids=lambda b: ",".join(f"{k}={v}" for k, v in b.items()) or "default")
@pytest.mark.parametrize("name", sorted(AWKWARD))
def test_awkward_programs_trace_identically(name, budgets):
    source, call = AWKWARD[name]
    traces = _both(program(source), call, **budgets)
    assert traces["c"] == traces["python"]


@needs_c
def test_the_awkward_programs_exercise_what_they_claim():
    """Guards the cases above against silently testing nothing."""
    full = {name: trace_call(program(src), call, implementation="c") for name, (src, call) in AWKWARD.items()}
    events = {name: {s.event for s in t.steps} for name, t in full.items()}
    assert {"yield", "return"} <= events["generator"] and "exception" in events["exceptions"]
    assert full["uncaught"].exception.type == "ZeroDivisionError"
    assert full["program_drops_the_tracer"].truncated and full["program_drops_the_tracer"].returned == "3"
    assert not full["program_reinstalls_what_it_finds"].truncated
    assert "g" in {s.func for s in full["program_reinstalls_what_it_finds"].steps}  # traced on after the reinstall
    assert max(s.depth for s in full["recursion"].steps) == 6
    assert any("<listcomp>" in s.func for s in full["closures_lambdas_comprehensions"].steps)
    assert trace_call(program(AWKWARD["recursion"][0]), "fib(20)", max_events=5, implementation="c").truncated


@needs_c
def test_deep_recursion_leaves_the_program_and_tracing_as_they_were():
    src = "def deep(n):\n    return 1 + deep(n + 1)\n"
    before = sys.gettrace()
    trace = trace_call(src, "deep(0)", implementation="c")
    assert trace.exception is not None and trace.exception.type == "RecursionError"
    assert sys.gettrace() is before


@needs_c
def test_a_previous_python_tracer_is_restored_and_keeps_working():
    seen = []

    def previous(frame, event, arg):
        seen.append(event)
        return None

    original = sys.gettrace()
    sys.settrace(previous)
    try:
        trace_call("def f():\n    return 1\n", "f()", implementation="c")
        trace_call("def f(n):\n    for i in range(n):\n        n += i\n    return n\n", "f(50)", max_events=3,
                   implementation="c")
        assert sys.gettrace() is previous
        count = len(seen)
        (lambda: None)()
        assert len(seen) > count  # the restored tracer is live again
    finally:
        sys.settrace(original)


def _mbpp_calls(limit: int):
    path = default_data_dir() / "mbpp" / "mbpp.jsonl"
    if not path.exists():
        pytest.skip(f"public data not found under {path.parent.parent} (set NEXT_JAX_DATA)")
    for line in path.read_text().splitlines()[:limit]:
        row = json.loads(line)
        if row.get("test_setup_code", "").strip():
            continue
        for test in row["test_list"]:
            node = ast.parse(test).body[0]
            if isinstance(node, ast.Assert):
                expr = node.test.left if isinstance(node.test, ast.Compare) else node.test
                yield row["task_id"], row["code"], ast.unparse(expr)


@needs_c
def test_mbpp_calls_trace_identically():
    compared = 0
    for task_id, code, call in _mbpp_calls(100):
        for budgets in ({}, {"max_events": 7}):
            traces = _both(code, call, **budgets)
            assert traces["c"] == traces["python"], (task_id, call, budgets)
            compared += 1
    assert compared >= 500


@needs_c
def test_a_recorder_kept_by_the_program_records_nothing_after_the_trace():
    src = program("""
        import sys

        KEPT = []

        def f():
            KEPT.append(sys.gettrace())
            return 1

        def later(x):
            y = x + 1
            return y
    """)
    namespace = {"__name__": "__candidate__"}
    trace = trace_call(src, "f()", namespace=namespace, implementation="c")
    recorder = namespace["KEPT"][0]
    before = len(recorder.steps)
    original = sys.gettrace()
    try:
        sys.settrace(recorder)  # re-installed after the trace: it must stay inert
        namespace["later"](1)
    finally:
        sys.settrace(original)
    assert len(recorder.steps) == before == len(trace.steps)
    with pytest.raises(RuntimeError):
        recorder.run(compile("f()", "<call>", "eval"), namespace)


@needs_c
def test_every_budget_boundary_traces_identically():
    """A budget can run out at any event (a line closed by an exception, a yield, a return): sweep them all."""
    src = program("""
        def g(i):
            if i % 2:
                raise ValueError(i)
            return i

        def f(n):
            out = []
            for i in range(n):
                try:
                    out.append(g(i))
                except ValueError:
                    out.append(-1)

            def gen():
                for j in range(3):
                    yield j
            return out, list(gen())
    """)
    full = trace_call(src, "f(6)", implementation="c")
    assert not full.truncated
    for max_events in range(1, len(full.steps) + 2):
        for max_bytes in (10, 40, 10**6):
            traces = _both(src, "f(6)", max_events=max_events, max_bytes=max_bytes)
            assert traces["c"] == traces["python"], (max_events, max_bytes)
