"""The tracer's shortcuts (identity checks, fused rendering + change checks) record exactly what re-rendering
every local at every line would."""

from __future__ import annotations

import copy
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_saferepr import general_safe_repr  # a sibling module: tests/ holds no packages

from next_jax.execution.saferepr import safe_repr
from next_jax.execution.shapes import render_with_shape, unchanged
from next_jax.execution.tracer import trace_call

pytestmark = pytest.mark.usefixtures("each_tracer_implementation")


def program(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def changed(trace, name: str) -> list[tuple[int, str]]:
    return [(s.line, s.changes[name]) for s in trace.steps if name in s.changes]


_SCALAR = st.integers() | st.integers(min_value=2**60, max_value=2**70) | st.floats() | st.booleans() | st.none() \
    | st.text(max_size=6)
_VALUES = (st.lists(_SCALAR, max_size=120) | st.tuples(_SCALAR, _SCALAR)
           | st.lists(st.lists(_SCALAR, max_size=4) | st.tuples(_SCALAR, _SCALAR) | _SCALAR, max_size=40)
           | st.tuples(st.lists(st.integers(), max_size=3), _SCALAR)
           | st.dictionaries(st.text(max_size=4), st.lists(st.integers(), max_size=3) | _SCALAR, max_size=20))


@settings(max_examples=300, deadline=None)
@given(value=_VALUES, max_len=st.integers(1, 300))
def test_render_with_shape_prints_what_the_general_path_prints(value, max_len):
    text, _ = render_with_shape(value, max_len)
    assert text == general_safe_repr(value, max_len)


def _mutations(value) -> list:
    """(path to a list inside `value`, an in-place change to apply to it) pairs."""
    out = []
    for path, target in _lists_in(value, ()):
        out.append((path, lambda xs: xs.append(7)))
        if target:
            out.append((path, lambda xs: xs.__setitem__(0, "x")))
            out.append((path, lambda xs: xs.pop()))
    return out


def _lists_in(value, path: tuple):
    if type(value) is list:
        yield path, value
    if type(value) in (list, tuple):
        for i, item in enumerate(value):
            yield from _lists_in(item, (*path, i))


def _at(value, path: tuple):
    for i in path:
        value = value[i]
    return value


@settings(max_examples=300, deadline=None)
@given(value=st.lists(st.lists(st.integers(0, 3), max_size=4) | st.tuples(st.integers(0, 3)) | st.integers(0, 3),
                      max_size=8)
       | st.tuples(st.lists(st.integers(0, 3), max_size=3), st.integers()),
       max_len=st.sampled_from([8, 20, 200]))
def test_a_fused_shape_notices_every_mutation_that_changes_the_rendering(value, max_len):
    for path, mutate in _mutations(value):
        fresh = copy.deepcopy(value)
        text, shape = render_with_shape(fresh, max_len)
        assert shape is not None and unchanged(shape)
        mutate(_at(fresh, path))
        if safe_repr(fresh, max_len) != text:
            assert not unchanged(shape)


def test_rebinding_back_to_the_very_same_immutable_object_is_a_change_after_a_mutable_one():
    src = program("""
        T = (1, 2)

        def f():
            x = T
            x = [1, 2]
            x = T
            return 0
    """)
    assert changed(trace_call(src, "f()"), "x") == [(4, "(1, 2)"), (5, "[1, 2]"), (6, "(1, 2)")]


def test_nested_lists_show_changes_made_through_rows_and_aliases():
    src = program("""
        def f():
            m = [[1, 2], [3, 4]]
            m[1][0] = 9
            row = m[0]
            row.append(5)
            t = (row, 0)
            row.pop(0)
            return m
    """)
    trace = trace_call(src, "f()")
    assert changed(trace, "m") == [(2, "[[1, 2], [3, 4]]"), (3, "[[1, 2], [9, 4]]"), (5, "[[1, 2, 5], [9, 4]]"),
                                   (7, "[[2, 5], [9, 4]]")]
    assert changed(trace, "row") == [(4, "[1, 2]"), (5, "[1, 2, 5]"), (7, "[2, 5]")]
    assert changed(trace, "t") == [(6, "([1, 2, 5], 0)"), (7, "([2, 5], 0)")]
    assert trace.returned == "[[2, 5], [9, 4]]"


def test_a_mutation_inside_a_callee_shows_in_the_caller_when_it_resumes():
    src = program("""
        def f(xs):
            n = 0
            g(xs)
            n = 1
            return n

        def g(ys):
            ys[0].append(n_items(ys))

        def n_items(zs):
            return len(zs)
    """)
    trace = trace_call(src, "f([[0], [1]])")
    assert [c for c in changed(trace, "xs")] == [(1, "[[0], [1]]"), (3, "[[0, 2], [1]]")]
    assert changed(trace, "ys") == [(7, "[[0], [1]]"), (8, "[[0, 2], [1]]")]


def test_strings_and_ints_print_as_safe_repr_prints_them_under_any_budget():
    src = program("""
        def f():
            s = 'abcdefghij'
            u = '\\x00' * 8
            n = 1234567
            big = 10 ** 30
            return s
    """)
    for max_repr in (1, 8, 11, 12, 200):
        trace = trace_call(src, "f()", max_repr=max_repr)
        got = {name: value for s in trace.steps for name, value in s.changes.items()}
        assert got["s"] == safe_repr("abcdefghij", max_repr)
        assert got["u"] == safe_repr("\x00" * 8, max_repr)
        assert got["n"] == safe_repr(1234567, max_repr)
        assert got["big"] == safe_repr(10**30, max_repr)
