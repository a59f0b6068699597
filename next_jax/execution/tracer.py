"""Record what a candidate program does when called on one input (the NExT execution trace).

`trace_call(source, call)` compiles the program, runs its module code untraced, then evaluates the call
expression under `sys.settrace`, recording only frames whose code was compiled from `source` (never the
harness, the call expression or the standard library). A `Step` is recorded for

- each call into the program's own functions (`event="call"`, `changes` = the arguments, with `depth`),
- each line event (`event="line"`, `changes` = locals that line created or changed, possibly none),
- each return / generator yield (`changes={"__return__": repr}` / `{"__yield__": repr}`),
- each exception raised in or passing through a frame (`changes={"__exception__": "ValueError('x')"}`).

Python's 'line' event fires *before* a line runs, so locals are diffed at the frame's next event and the diff
is attributed to the line that just ran. Values are compared by their rendered `safe_repr`, so in-place
mutation (`xs.append(3)`) shows up; identity checks on a value's visible parts (`saferepr.shape_of`) skip
rendering values that cannot have changed. Comprehension and generator-expression frames (3.11 runs them as
their own frames) are traced as nested frames whose loop variables are recorded but whose `.0` iterator,
call and return are not. Lambdas are not traced inside: a lambda is part of the line that calls it (a sort
key would otherwise add three steps per element), so its effect and any exception it raises show there.

Lines are the physical lines Python reports: a multi-line statement can yield several line steps, and a
decorated function's call step sits on its first decorator. Renderers map lines to statements (`render.py`),
which keeps the cost of parsing the program out of the sandboxed run.

The step counter is global, so `step` orders the whole execution. Past `max_events` steps or `max_bytes` of
rendered values, recording stops (the trace function is removed, so the rest runs at full speed) and the
trace says `truncated=True`; the call still runs to completion, so the result is always known.

JSON form (`Trace.to_json()`): `{"steps": [{"step", "line", "event", "func", "depth", "frame", "changes"}],
"result": {"return": repr} | {"exception": {"type", "message", "line"}}, "truncated": bool}`. `frame` numbers
function invocations in call order, which lets renderers rebuild each frame's full state from its changes.
"""

from __future__ import annotations

import builtins
import functools
import opcode
import sys
from dataclasses import dataclass
from operator import is_
from types import CodeType
from typing import Any, NamedTuple

from next_jax.execution.saferepr import safe_repr, type_name
from next_jax.execution.shapes import IMMUTABLE, shape_of, unchanged

__all__ = ["Step", "Trace", "TraceException", "trace_call", "trace_code"]

CALL_FILENAME = "<trace-call>"
_COMPREHENSIONS = frozenset({"<listcomp>", "<setcomp>", "<dictcomp>", "<genexpr>"})
# inspect.CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR: frames that suspend (a 'return' event that is
# really a yield or an await). inspect itself is too slow to import in sandbox children.
_CO_SUSPENDS = 0x20 | 0x80 | 0x200
_YIELD_VALUE = opcode.opmap["YIELD_VALUE"]
_SCALARS = frozenset({int, float, str, bool, type(None), bytes, complex})
_FAST_INT = 10**7  # ints this small render as repr(), whatever max_repr is
_SKIP = (object(), "", None)  # snapshot entry of a name never reported (a comprehension's `.0` iterator)


class Step(NamedTuple):
    """One recorded event, in global execution order."""

    step: int
    line: int  # 1-based physical line in the program source
    event: str  # "call" | "line" | "return" | "yield" | "exception"
    func: str  # qualified name of the function the step ran in
    depth: int  # 0 for the called function, +1 per nested call into the program's own code
    frame: int  # ordinal of the function invocation this step belongs to
    changes: dict[str, str]  # name -> safe_repr of the new value

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "line": self.line, "event": self.event, "func": self.func,
                "depth": self.depth, "frame": self.frame, "changes": dict(self.changes)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Step:
        return cls(int(d["step"]), int(d["line"]), str(d.get("event", "line")), str(d.get("func", "")),
                   int(d.get("depth", 0)), int(d.get("frame", 0)), dict(d["changes"]))


_as_step = functools.partial(tuple.__new__, Step)  # Step._make without its Python-level length check


@dataclass(frozen=True)
class TraceException:
    """The exception the call ended with; `line` is its innermost line in the program (None if outside)."""

    type: str
    message: str
    line: int | None


@dataclass(frozen=True)
class Trace:
    """The structured trace of one call: steps, outcome and whether recording was cut short."""

    steps: tuple[Step, ...]
    returned: str | None  # safe_repr of the return value; None when the call raised
    exception: TraceException | None
    truncated: bool

    def to_json(self) -> dict[str, Any]:
        if self.exception is not None:
            e = self.exception
            result: dict[str, Any] = {"exception": {"type": e.type, "message": e.message, "line": e.line}}
        else:
            result = {"return": self.returned}
        return {"steps": [s.to_json() for s in self.steps], "result": result, "truncated": self.truncated}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Trace:
        result = d["result"]
        exc = result.get("exception")
        exception = None
        if exc is not None:
            line = exc.get("line")
            exception = TraceException(str(exc["type"]), str(exc["message"]), None if line is None else int(line))
        return cls(steps=tuple(Step.from_json(s) for s in d["steps"]),
                   returned=None if exc is not None else result.get("return"),
                   exception=exception, truncated=bool(d["truncated"]))


class _Recorder:
    """Owns the step list and budgets; its `on_call` is the global trace function."""

    def __init__(self, filename: str, max_events: int, max_bytes: int, max_repr: int, root: Any,
                 previous: Any) -> None:
        self.filename = filename
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.max_repr = max_repr
        self.root = root  # the frame that evaluates the call: stack walks stop there
        self.previous = previous
        self.steps: list[tuple] = []
        self.count = 0
        self.bytes = 0
        self.frames = 0
        self.stopped = False
        self.active: dict[Any, _Frame] = {}
        self.last_return: tuple = _SKIP  # (value, rendering, shape) of the latest depth-0 return

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
            depth = 0
            parent = frame.f_back
            while parent is not None and parent is not self.root:
                found = active.get(parent)
                if found is not None:
                    depth = found.depth + 1
                    break
                parent = parent.f_back
            quiet = code.co_name in _COMPREHENSIONS
            state = _Frame(self, self.frames, code.co_qualname, depth, quiet, code.co_flags & _CO_SUSPENDS)
            self.frames += 1
            active[frame] = state
            if quiet:  # a 3.11 comprehension's only argument is its iterator, `.0`
                state.snap = {".0": _SKIP}
            else:
                changes, size = state.diff(frame)
                self.emit(state, frame.f_lineno or 0, "call", changes, size)
        except Exception:  # noqa: BLE001 - a failing tracer must never change what the program does
            self.stop()
        return None if self.stopped else state.tracer

    def emit(self, state: _Frame, line: int, event: str, changes: dict[str, str], size: int) -> None:
        count = self.count
        if count >= self.max_events or self.bytes + size > self.max_bytes:
            self.stop()
            return
        self.steps.append((count, line, event, state.func, state.depth, state.ordinal, changes))
        self.count = count + 1
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

    __slots__ = ("rec", "ordinal", "func", "depth", "quiet", "suspends", "snap", "line", "unwinding", "tracer")

    def __init__(self, rec: _Recorder, ordinal: int, func: str, depth: int, quiet: bool, suspends: int):
        self.rec = rec
        self.ordinal = ordinal
        self.func = func
        self.depth = depth
        self.quiet = quiet
        self.suspends = suspends
        # name -> (value, rendering, shape): an identical value whose shape is unchanged cannot render
        # differently, so only new, rebound or possibly mutated values get rendered again.
        self.snap: dict[str, tuple] = {}
        self.line: int | None = None  # the line that started running and is not yet recorded
        self.unwinding = False  # an exception event has not (yet) been followed by a handler's line
        self.tracer = self.trace  # one bound method, returned to keep tracing this frame

    def diff(self, frame: Any) -> tuple[dict[str, str], int]:
        """Locals whose rendering changed since the last snapshot (and their total size); updates it."""
        snap = self.snap
        changes: dict[str, str] = {}
        size = 0
        max_repr = self.rec.max_repr
        for name, value in frame.f_locals.items():
            old = snap.get(name)
            if old is not None:
                if value is old[0]:
                    shape = old[2]
                    if shape is IMMUTABLE:
                        continue
                    if shape is not None:
                        if shape[3] or type(shape[2]) is tuple:  # nested, or a dict
                            if unchanged(shape):
                                continue
                        # A flat sequence or set: `unchanged` inlined for the commonest mutable values.
                        elif len(value) == shape[1] and all(map(is_, value, shape[2])):
                            continue
                elif old is _SKIP:
                    continue
            cls = type(value)
            if cls is int and -_FAST_INT < value < _FAST_INT:  # the commonest case, without a call
                text = repr(value)
                snap[name] = (value, text, IMMUTABLE)
            else:
                text = safe_repr(value, max_repr)
                snap[name] = (value, text, IMMUTABLE if cls in _SCALARS else shape_of(value, max_repr))
            if old is None or old[1] != text:
                changes[name] = text
                size += len(text)
        return changes, size

    def close(self, frame: Any) -> None:
        """Record the line that just ran, with the locals it changed."""
        changes, size = self.diff(frame)
        line = self.line
        rec = self.rec
        if line is None:
            if not changes:
                return
            line = (frame.f_lineno or 0)
        self.line = None
        count = rec.count
        if count >= rec.max_events or rec.bytes + size > rec.max_bytes:
            rec.stop()
            return
        rec.steps.append((count, line, "line", self.func, self.depth, self.ordinal, changes))
        rec.count = count + 1
        rec.bytes += size

    def trace(self, frame: Any, event: str, arg: Any) -> Any:
        """The local trace function of this frame."""
        rec = self.rec
        if rec.stopped:
            return None
        try:
            if event == "line":
                prev = self.line
                if prev is None:
                    self.close(frame)
                else:  # close(), inlined for the hottest path
                    changes, size = self.diff(frame)
                    count = rec.count
                    if count >= rec.max_events or rec.bytes + size > rec.max_bytes:
                        rec.stop()
                        return None
                    rec.steps.append((count, prev, "line", self.func, self.depth, self.ordinal, changes))
                    rec.count = count + 1
                    rec.bytes += size
                self.line = frame.f_lineno
                self.unwinding = False
            elif event == "return":
                self._on_return(frame, arg)
            elif event == "exception":
                self.close(frame)
                self.unwinding = True
                text = safe_repr(arg[1], rec.max_repr)
                rec.emit(self, (frame.f_lineno or 0), "exception", {"__exception__": text}, len(text))
        except Exception:  # noqa: BLE001 - never let a tracer bug alter the traced program
            rec.stop()
        # After a stop, None leaves the frame's f_trace cleared (CPython keeps it on None results).
        return None if rec.stopped else self.tracer

    def _on_return(self, frame: Any, value: Any) -> None:
        rec = self.rec
        self.close(frame)
        if self.suspends and frame.f_code.co_code[frame.f_lasti] == _YIELD_VALUE:
            if not self.quiet:
                text = safe_repr(value, rec.max_repr)
                rec.emit(self, (frame.f_lineno or 0), "yield", {"__yield__": text}, len(text))
            return
        rec.active.pop(frame, None)
        self.tracer = None  # break the self <-> bound-method cycle now rather than in a GC pass
        if self.quiet or self.unwinding or rec.stopped:
            return
        for entry in self.snap.values():  # `return result`: close() has just rendered that very object
            if entry[0] is value:
                text, shape = entry[1], entry[2]
                break
        else:
            text = safe_repr(value, rec.max_repr)
            shape = None
        if self.depth == 0:
            if shape is None:
                shape = IMMUTABLE if type(value) in _SCALARS else shape_of(value, rec.max_repr)
            rec.last_return = (value, text, shape)
        rec.emit(self, (frame.f_lineno or 0), "return", {"__return__": text}, len(text))


def _exception_info(exc: BaseException, filename: str, max_repr: int) -> TraceException:
    """Type, message and innermost program line of an exception that ended the call."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return TraceException(type_name(type(exc)), _message(exc, max_repr), line)


def _message(exc: BaseException, max_repr: int) -> str:
    """`str(exc)` where that provably runs no user code, else a rendering of the exception's args."""
    args = BaseException.__dict__["args"].__get__(exc)
    plain = type(args) is tuple and set(map(type, args)) <= _SCALARS
    cls = type(exc)
    if plain and builtins.__dict__.get(type_name(cls)) is cls:  # a builtin exception: its __str__ is C code
        text = str(exc)
    elif type(args) is tuple and len(args) == 1:
        text = args[0] if type(args[0]) is str else safe_repr(args[0], max_repr)
    else:
        text = safe_repr(args, max_repr)
    return text if len(text) <= max_repr else text[: max_repr - 3] + "..."


def trace_code(code: CodeType, call: str | CodeType, *, max_events: int = 10_000, max_bytes: int = 200_000,
               max_repr: int = 200, namespace: dict | None = None) -> Trace:
    """Run a compiled program's module code untraced in `namespace`, then trace the evaluation of `call`.

    Frames of code compiled with `code.co_filename` are traced. `call` is an expression, or one compiled in
    "eval" mode under another filename.
    """
    filename = code.co_filename
    namespace = namespace if namespace is not None else {"__name__": "__candidate__"}
    call_code = compile(call, CALL_FILENAME, "eval") if isinstance(call, str) else call
    try:
        exec(code, namespace)
    except (Exception, SystemExit) as exc:  # the program fails before the call: report it like a call error
        return Trace((), None, _exception_info(exc, filename, max_repr), False)
    previous = sys.gettrace()
    rec = _Recorder(filename, max_events, max_bytes, max_repr, sys._getframe(), previous)
    tracer = rec.on_call
    returned = info = None
    sys.settrace(tracer)
    try:
        try:
            value = eval(call_code, namespace)
        finally:
            # Python drops a trace function that raised (e.g. RecursionError on entry): the trace is partial.
            lost = not rec.stopped and sys.gettrace() != tracer
            sys.settrace(previous)
            rec.detach()
    except (Exception, SystemExit) as exc:  # `exc` is deleted on exit, so no traceback cycle is kept
        info = _exception_info(exc, filename, max_repr)
    else:
        # The called function's own return step usually rendered this very object already.
        last_value, last_text, shape = rec.last_return
        reuse = value is last_value and shape is not None and unchanged(shape)
        returned = last_text if reuse else safe_repr(value, max_repr)
    steps = tuple(map(_as_step, rec.steps))
    return Trace(steps, returned, info, rec.stopped or lost)


def trace_call(source: str, call: str, *, max_events: int = 10_000, max_bytes: int = 200_000,
               max_repr: int = 200, filename: str = "<candidate>", namespace: dict | None = None) -> Trace:
    """Compile `source` as `filename`, exec it, and trace the evaluation of the expression `call`.

    Raises SyntaxError for an invalid program (or call). Exceptions raised by the program are recorded in
    the trace's result, not raised. The previous trace function (`sys.gettrace()`) is restored afterwards.
    """
    code = compile(source, filename, "exec")
    return trace_code(code, call, max_events=max_events, max_bytes=max_bytes, max_repr=max_repr,
                      namespace=namespace)
