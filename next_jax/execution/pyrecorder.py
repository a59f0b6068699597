"""The pure-Python recorder: a `sys.settrace` function that records a call's steps (see tracer.py).

The reference implementation of what a trace records; `_ctracer.c` runs the same event loop in C and must record
exactly the same steps (tests/execution/test_tracer_parity.py). Steps are plain tuples
`(step, line, event, func, depth, frame, changes)`; tracer.py makes them `Step`s.
"""

from __future__ import annotations

import opcode
import sys
from operator import is_
from types import CodeType
from typing import Any

from next_jax.execution.saferepr import safe_repr
from next_jax.execution.shapes import IMMUTABLE, render_with_shape, unchanged

COMPREHENSIONS = frozenset({"<listcomp>", "<setcomp>", "<dictcomp>", "<genexpr>"})
# inspect.CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR: frames that suspend (a 'return' event that is
# really a yield or an await). inspect itself is too slow to import in sandbox children.
_CO_SUSPENDS = 0x20 | 0x80 | 0x200
_YIELD_VALUE = opcode.opmap["YIELD_VALUE"]
SCALARS = frozenset({int, float, str, bool, type(None), bytes, complex})
_FAST_INT = 10**7  # ints this small render as repr(), whatever max_repr is
SKIP = (object(), "", None)  # snapshot entry of a name never reported (a comprehension's `.0` iterator)
_MISSING = object()


class Recorder:
    """Owns the step list and budgets; its `on_call` is the global trace function."""

    __slots__ = ("filename", "max_events", "max_bytes", "max_repr", "root", "previous", "steps", "bytes",
                 "frames", "stopped", "active", "last_return")

    def __init__(self, filename: str, max_events: int, max_bytes: int, max_repr: int, root: Any,
                 previous: Any) -> None:
        self.filename = filename
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.max_repr = max_repr
        self.root = root  # the frame that evaluates the call: stack walks stop there
        self.previous = previous
        # (step, line, event, func, depth, frame, changes) tuples; `step` is always the index.
        self.steps: list[tuple] = []
        self.bytes = 0
        self.frames = 0
        self.stopped = False
        self.active: dict[Any, _Frame] = {}
        self.last_return: tuple = SKIP  # (value, rendering, shape) of the latest depth-0 return

    def on_call(self, frame: Any, event: str, arg: Any) -> Any:
        """The global trace function: starts tracing frames of the program's own code."""
        code = frame.f_code
        if code.co_filename != self.filename or self.stopped or code.co_name == "<lambda>":
            return None
        active = self.active
        state = active.get(frame)
        if state is not None:  # a suspended generator resumes
            return state.tracer
        try:
            parent = frame.f_back
            found = active.get(parent)  # usually called straight from a traced frame
            if found is None:
                root = self.root
                while parent is not None and parent is not root and found is None:
                    parent = parent.f_back
                    found = active.get(parent)
            state = _Frame(self, code, 0 if found is None else found.depth + 1)
            active[frame] = state
            if state.quiet:  # a 3.11 comprehension's only argument is its iterator, `.0`
                state.snap[".0"] = SKIP
            else:
                changes, size = state.diff(frame)
                steps = self.steps
                count = len(steps)
                if count >= self.max_events or self.bytes + size > self.max_bytes:
                    self.stop()
                else:
                    steps.append((count, frame.f_lineno or 0, "call", state.func, state.depth, state.ordinal,
                                  changes))
                    self.bytes += size
        except Exception:  # noqa: BLE001 - a failing tracer must never change what the program does
            self.stop()
        return None if self.stopped else state.tracer

    def emit(self, state: _Frame, line: int, event: str, changes: dict[str, str], size: int) -> None:
        steps = self.steps
        count = len(steps)
        if count >= self.max_events or self.bytes + size > self.max_bytes:
            self.stop()
            return
        steps.append((count, line, event, state.func, state.depth, state.ordinal, changes))
        self.bytes += size

    def stop(self) -> None:
        """Stop recording for good; the program keeps running untraced."""
        if self.stopped:
            return
        self.stopped = True
        sys.settrace(self.previous)
        self.detach()

    def detach(self) -> None:
        for frame, state in self.active.items():
            frame.f_trace = None
            state.tracer = None
        self.active.clear()


class _Frame:
    """Per-invocation state: the locals snapshot and the line whose effects are not yet recorded."""

    __slots__ = ("rec", "steps", "max_repr", "ordinal", "func", "depth", "quiet", "suspends", "snap", "still",
                 "line", "unwinding", "tracer")

    def __init__(self, rec: Recorder, code: CodeType, depth: int):
        self.rec = rec
        self.steps = rec.steps
        self.max_repr = rec.max_repr
        self.ordinal = rec.frames
        rec.frames += 1
        self.func = code.co_qualname
        self.depth = depth
        self.quiet = code.co_name in COMPREHENSIONS
        self.suspends = code.co_flags & _CO_SUSPENDS
        # name -> (value, rendering, shape): an identical value whose shape is unchanged cannot render
        # differently, so only new, rebound or possibly mutated values get rendered again.
        self.snap: dict[str, tuple] = {}
        # name -> value for the snapshot's IMMUTABLE entries: while bound to the same object such a local
        # renders the same, which costs one identity check per line to confirm.
        self.still: dict[str, Any] = {}
        self.line: int | None = None  # the line that started running and is not yet recorded
        self.unwinding = False  # an exception event has not (yet) been followed by a handler's line
        self.tracer = self.trace  # one bound method, returned to keep tracing this frame

    def diff(self, frame: Any) -> tuple[dict[str, str], int]:
        """Locals whose rendering changed since the last snapshot (and their total size); updates it."""
        still = self.still
        snap = self.snap
        changes: dict[str, str] = {}
        size = 0
        for name, value in frame.f_locals.items():
            if still.get(name, _MISSING) is value:
                continue
            text = self.changed(name, value, snap.get(name))
            if text is not None:
                changes[name] = text
                size += len(text)
        return changes, size

    def changed(self, name: str, value: Any, old: tuple | None) -> str | None:
        """The rendering of a new, rebound or possibly mutated local if it differs from its snapshot `old`."""
        if old is not None:
            if value is old[0]:
                shape = old[2]
                if shape is IMMUTABLE:
                    return None
                if shape is not None:
                    if shape[3] or type(shape[2]) is tuple:  # nested, or a dict
                        if unchanged(shape):
                            return None
                    # A flat sequence or set: `unchanged` inlined for the commonest mutable values.
                    elif len(value) == shape[1] and all(map(is_, value, shape[2])):
                        return None
            elif old is SKIP:
                self.still[name] = value  # never reported, nor looked at again while bound to this object
                return None
        cls = type(value)
        max_repr = self.max_repr
        if cls in SCALARS:
            # Exact builtin scalars print with repr() (no user code) when that fits; the rest via safe_repr.
            if cls is int and -_FAST_INT < value < _FAST_INT:
                text = repr(value)  # what safe_repr prints for these, whatever the budget
            elif cls is int or ((cls is str or cls is bytes) and len(value) > max_repr):
                text = safe_repr(value, max_repr)  # may be too long to print, or slow to copy
            else:
                text = repr(value)
                if len(text) > max_repr:
                    text = safe_repr(value, max_repr)
            shape = IMMUTABLE
        else:
            text, shape = render_with_shape(value, max_repr)
        self.snap[name] = (value, text, shape)
        if shape is IMMUTABLE:
            self.still[name] = value
        else:
            self.still.pop(name, None)
        return text if old is None or old[1] != text else None

    def close(self, frame: Any) -> None:
        """Record the line that just ran, with the locals it changed."""
        changes, size = self.diff(frame)
        line = self.line
        if line is None:
            if not changes:
                return
            line = (frame.f_lineno or 0)
        self.line = None
        self.rec.emit(self, line, "line", changes, size)

    def trace(self, frame: Any, event: str, arg: Any) -> Any:
        """The local trace function of this frame."""
        try:
            if event == "line":
                line = self.line
                if line is None:
                    self.close(frame)
                else:  # close() and diff(), inlined for the hottest path
                    still = self.still
                    snap = self.snap
                    changes = {}
                    size = 0
                    for name, value in frame.f_locals.items():
                        if still.get(name, _MISSING) is value:
                            continue
                        old = snap.get(name)
                        cls = type(value)
                        # changed(), inlined for the commonest cases: an unchanged flat list, a small int or
                        # a short string.
                        if old is not None and value is old[0]:
                            shape = old[2]
                            if (shape and not shape[3] and type(shape[2]) is list  # neither None nor IMMUTABLE
                                    and len(value) == shape[1] and all(map(is_, value, shape[2]))):
                                continue
                            text = self.changed(name, value, old)
                            if text is None:
                                continue
                        elif cls is int and -_FAST_INT < value < _FAST_INT:
                            text = repr(value)  # what safe_repr prints for these, whatever the budget
                            snap[name] = (value, text, IMMUTABLE)
                            still[name] = value
                            if old is not None and old[1] == text:
                                continue
                        elif cls is str and len(value) <= self.max_repr:
                            text = repr(value)  # what safe_repr prints, whenever it fits
                            if len(text) > self.max_repr:
                                text = safe_repr(value, self.max_repr)
                            snap[name] = (value, text, IMMUTABLE)
                            still[name] = value
                            if old is not None and old[1] == text:
                                continue
                        else:
                            text = self.changed(name, value, old)
                            if text is None:
                                continue
                        changes[name] = text
                        size += len(text)
                    steps = self.steps
                    count = len(steps)
                    rec = self.rec
                    if count >= rec.max_events or (size and rec.bytes + size > rec.max_bytes):
                        rec.stop()
                        return None
                    steps.append((count, line, "line", self.func, self.depth, self.ordinal, changes))
                    if size:
                        rec.bytes += size
                self.line = frame.f_lineno
                if self.unwinding:
                    self.unwinding = False
            elif event == "return":
                self._on_return(frame, arg)
            elif event == "exception":
                self.close(frame)
                self.unwinding = True
                rec = self.rec
                if rec.stopped:  # close() spent a budget
                    return None
                text = safe_repr(arg[1], rec.max_repr)
                rec.emit(self, (frame.f_lineno or 0), "exception", {"__exception__": text}, len(text))
        except Exception:  # noqa: BLE001 - never let a tracer bug alter the traced program
            self.rec.stop()
        # After a stop, `tracer` is None, which leaves the frame's f_trace cleared (CPython keeps it on None).
        return self.tracer

    def _on_return(self, frame: Any, value: Any) -> None:
        rec = self.rec
        steps = self.steps
        changes, size = self.diff(frame)  # close(), inlined
        line = self.line
        if line is not None or changes:
            self.line = None
            count = len(steps)
            if count >= rec.max_events or rec.bytes + size > rec.max_bytes:
                rec.stop()
            else:
                steps.append((count, frame.f_lineno or 0 if line is None else line, "line", self.func,
                              self.depth, self.ordinal, changes))
                rec.bytes += size
        if self.suspends and frame.f_code.co_code[frame.f_lasti] == _YIELD_VALUE:
            if not self.quiet and not rec.stopped:
                text = safe_repr(value, rec.max_repr)
                rec.emit(self, (frame.f_lineno or 0), "yield", {"__yield__": text}, len(text))
            return
        rec.active.pop(frame, None)
        self.tracer = None  # break the self <-> bound-method cycle now rather than in a GC pass
        if self.quiet or self.unwinding or rec.stopped:
            return
        for entry in self.snap.values():  # `return result`: diff() has just rendered that very object
            if entry[0] is value:
                text, shape = entry[1], entry[2]
                break
        else:
            if self.depth or type(value) in SCALARS:
                text, shape = safe_repr(value, rec.max_repr), IMMUTABLE
            else:  # the call's result: keep what tells whether trace_code may reuse this rendering
                text, shape = render_with_shape(value, rec.max_repr)
        if self.depth == 0:
            rec.last_return = (value, text, shape)
        count = len(steps)
        size = len(text)
        if count >= rec.max_events or rec.bytes + size > rec.max_bytes:
            rec.stop()
            return
        steps.append((count, frame.f_lineno or 0, "return", self.func, self.depth, self.ordinal,
                      {"__return__": text}))
        rec.bytes += size
