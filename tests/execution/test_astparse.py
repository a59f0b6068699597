"""Parsing from several threads at once: the trusted side must never see CPython's spurious SystemError."""
from __future__ import annotations

import gc
import threading
import time

from next_jax.execution import astparse

# Nested parentheses deepen the AST converter's recursion; the functions give it many nodes to convert.
SOURCE = "x = " + "(" * 80 + "1" + ")" * 80 + "\n" + "def f(a):\n    return [a + i for i in range(3)]\n" * 30


class _YieldsOnCollect:
    """Cyclic garbage whose finalizer gives up the GIL, so a collection inside a parse switches threads."""

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        time.sleep(0)


def test_concurrent_parses_under_gc_pressure_all_succeed():
    errors: list[BaseException] = []
    trees: list[int] = []

    def work() -> None:
        for _ in range(150):
            for _ in range(5):
                _YieldsOnCollect()
            try:
                trees.append(len(astparse.parse(SOURCE).body))
            except SystemError as e:  # what a bare ast.parse raises here on CPython 3.11
                errors.append(e)

    threshold = gc.get_threshold()
    gc.set_threshold(10, 1, 1)
    try:
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        gc.set_threshold(*threshold)
    assert errors == []
    assert trees == [31] * 600


def test_parse_keeps_ast_parse_signature():
    assert astparse.parse("f(1)", "<call>", "eval").body.func.id == "f"
