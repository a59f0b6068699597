"""``ast.parse`` made safe to call from several threads at once.

CPython 3.11 keeps the AST-to-object converter's recursion counter in per-interpreter state, so two threads
parsing at once (the pool's per-candidate threads, tf.data's parallel map) can interleave on it when one of them
runs garbage collection mid-conversion, and ``ast.parse`` then raises ``SystemError: AST constructor recursion
depth mismatch`` on valid code (CPython gh-106905). Every parse on the trusted side goes through one lock. The
lock comes from ``_thread``, not ``threading``: the zygote imports this package and must not pay ``threading``'s
fork handlers on every fork.
"""
from __future__ import annotations

import _thread
import ast

_LOCK = _thread.allocate_lock()


def parse(source: str | bytes, filename: str = "<unknown>", mode: str = "exec") -> ast.AST:
    """``ast.parse(source, filename, mode)`` under the process-wide parse lock."""
    with _LOCK:
        return ast.parse(source, filename, mode)
