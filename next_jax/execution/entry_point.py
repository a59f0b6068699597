"""Which function a candidate's tests exercise, read from the first test's assert."""

from __future__ import annotations

import ast

from next_jax.execution import astparse
from next_jax.execution.verdict import Candidate


def infer_entry_point(candidate: Candidate) -> str:
    """The function under test: the innermost named call on the tested side of the first test.

    ``assert sum(10, 15) == 6`` -> ``sum``; ``assert sorted(f(x)) == [...]`` -> ``f``;
    ``assert math.isclose(area(2), 12.5)`` -> ``area``.
    """
    for test in candidate.tests[:1]:
        try:
            tree = astparse.parse(test)
        except SyntaxError:
            return ""
        for node in ast.walk(tree):
            if isinstance(node, ast.Assert):
                tested = node.test.left if isinstance(node.test, ast.Compare) else node.test
                return _innermost_call(tested)
    return ""


def _innermost_call(node: ast.AST) -> str:
    best, best_depth = "", -1

    def visit(n: ast.AST, depth: int) -> None:
        nonlocal best, best_depth
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and depth > best_depth:
            best, best_depth = n.func.id, depth
        for child in ast.iter_child_nodes(n):
            visit(child, depth + 1)

    visit(node, 0)
    return best
