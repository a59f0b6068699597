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
mutation (`xs.append(3)`) shows up; identity checks skip rendering values that cannot have changed: one per
local bound to the same immutable object as before, and for containers one per visible part
(`shapes.render_with_shape` renders a value together with what tells its next change). Comprehension and generator-expression frames (3.11 runs them as
their own frames) are traced as nested frames whose loop variables are recorded but whose `.0` iterator,
call and return are not. Lambdas are not traced inside: a lambda is part of the line that calls it (a sort
key would otherwise add three steps per element), so its effect and any exception it raises show there.

Lines are the physical lines Python reports: a multi-line statement can yield several line steps, and a
decorated function's call step sits on its first decorator. Renderers map lines to statements (`render.py`),
which keeps the cost of parsing the program out of the sandboxed run.

The step counter is global, so `step` orders the whole execution. Past `max_events` steps or `max_bytes` of
rendered values, recording stops (the trace function is removed, so the rest runs at full speed) and the
trace says `truncated=True`; the call still runs to completion, so the result is always known.

Two recorders record exactly the same steps: `_Recorder` below (pure Python, a `sys.settrace` function) and
the C event loop in `_ctracer.c` (a `PyEval_SetTrace` function that calls back into this package only to render
values), used wherever it was built; `implementation=` / NEXT_JAX_TRACER=python choose.

JSON form (`Trace.to_json()`): `{"steps": [{"step", "line", "event", "func", "depth", "frame", "changes"}],
"result": {"return": repr} | {"exception": {"type", "message", "line"}}, "truncated": bool}`. `frame` numbers
function invocations in call order, which lets renderers rebuild each frame's full state from its changes.
"""

from __future__ import annotations

import builtins
import functools
import opcode
import os
import sys
from dataclasses import dataclass
from operator import is_
from types import CodeType
from typing import Any, NamedTuple

from next_jax.execution.saferepr import safe_repr, type_name
from next_jax.execution.shapes import IMMUTABLE, render_with_shape, unchanged

try:  # the same recorder's event loop in C (_ctracer.c), built at install time where a compiler exists
    from next_jax.execution import _ctracer
except ImportError:  # pragma: no cover - the pure-Python recorder below records the same steps, slower
    _ctracer = None

__all__ = ["IMPLEMENTATIONS", "Step", "Trace", "TraceException", "default_implementation", "trace_call",
           "trace_code"]

# "c": the C event loop with Python rendering; "python": `_Recorder` below. Both record the same steps.
IMPLEMENTATIONS = ("c", "python") if _ctracer is not None else ("python",)


def default_implementation() -> str:
    """"c" where it was built, unless NEXT_JAX_TRACER=python (read at import) asks for the pure-Python one."""
    return _DEFAULT


_DEFAULT = "python" if _ctracer is None or os.environ.get("NEXT_JAX_TRACER") == "python" else "c"

CALL_FILENAME = "<trace-call>"
_COMPREHENSIONS = frozenset({"<listcomp>", "<setcomp>", "<dictcomp>", "<genexpr>"})
# inspect.CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR: frames that suspend (a 'return' event that is
# really a yield or an await). inspect itself is too slow to import in sandbox children.
_CO_SUSPENDS = 0x20 | 0x80 | 0x200
_YIELD_VALUE = opcode.opmap["YIELD_VALUE"]
_SCALARS = frozenset({int, float, str, bool, type(None), bytes, complex})
_FAST_INT = 10**7  # ints this small render as repr(), whatever max_repr is
_SKIP = (object(), "", None)  # snapshot entry of a name never reported (a comprehension's `.0` iterator)
_MISSING = object()


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
if _ctracer is not None:
    _ctracer.configure(sys.settrace, safe_repr, render_with_shape, unchanged, IMMUTABLE, _SKIP, Step)


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
                state.snap[".0"] = _SKIP
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

    def __init__(self, rec: _Recorder, code: CodeType, depth: int):
        self.rec = rec
        self.steps = rec.steps
        self.max_repr = rec.max_repr
        self.ordinal = rec.frames
        rec.frames += 1
        self.func = code.co_qualname
        self.depth = depth
        self.quiet = code.co_name in _COMPREHENSIONS
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
            elif old is _SKIP:
                self.still[name] = value  # never reported, nor looked at again while bound to this object
                return None
        cls = type(value)
        max_repr = self.max_repr
        if cls in _SCALARS:
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
            if self.depth or type(value) in _SCALARS:
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
               max_repr: int = 200, namespace: dict | None = None, implementation: str | None = None) -> Trace:
    """Run a compiled program's module code untraced in `namespace`, then trace the evaluation of `call`.

    Frames of code compiled with `code.co_filename` are traced. `call` is an expression, or one compiled in
    "eval" mode under another filename. `implementation` picks the recorder ("c" or "python"; default
    `default_implementation()`).
    """
    implementation = implementation or _DEFAULT
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"tracer implementation {implementation!r} is not available here: {IMPLEMENTATIONS}")
    filename = code.co_filename
    namespace = namespace if namespace is not None else {"__name__": "__candidate__"}
    call_code = compile(call, CALL_FILENAME, "eval") if isinstance(call, str) else call
    try:
        exec(code, namespace)
    except (Exception, SystemExit) as exc:  # the program fails before the call: report it like a call error
        return Trace((), None, _exception_info(exc, filename, max_repr), False)
    previous = sys.gettrace()
    returned = info = None
    if implementation == "c":
        rec = _ctracer.Recorder(filename, max_events, max_bytes, max_repr, previous)
        try:
            value = rec.run(call_code, namespace)  # installs, evaluates, restores `previous`, forgets frames
        except (Exception, SystemExit) as exc:
            info = _exception_info(exc, filename, max_repr)
        truncated = rec.stopped or rec.lost
    else:
        rec = _Recorder(filename, max_events, max_bytes, max_repr, sys._getframe(), previous)
        tracer = rec.on_call
        sys.settrace(tracer)
        try:
            try:
                value = eval(call_code, namespace)
            finally:
                # Python drops a trace function that raised (e.g. RecursionError on entry): the trace is partial.
                lost = not rec.stopped and sys.gettrace() is not tracer
                sys.settrace(previous)
                if rec.active:  # frames still traced: the call raised, or a generator was left suspended
                    rec.detach()
        except (Exception, SystemExit) as exc:  # `exc` is deleted on exit, so no traceback cycle is kept
            info = _exception_info(exc, filename, max_repr)
        truncated = rec.stopped or lost
    if info is None:
        # The called function's own return step usually rendered this very object already.
        last_value, last_text, shape = rec.last_return
        reuse = value is last_value and (shape is IMMUTABLE or (shape is not None and unchanged(shape)))
        returned = last_text if reuse else safe_repr(value, max_repr)
    steps = tuple(rec.steps) if implementation == "c" else tuple(map(_as_step, rec.steps))  # C makes Steps
    return _new_trace(steps, returned, info, truncated)


def _new_trace(steps: tuple[Step, ...], returned: str | None, exception: TraceException | None,
               truncated: bool) -> Trace:
    """`Trace(...)` without the frozen dataclass's four `object.__setattr__` calls (a third of a trivial trace)."""
    trace = object.__new__(Trace)
    fields = trace.__dict__
    fields["steps"] = steps
    fields["returned"] = returned
    fields["exception"] = exception
    fields["truncated"] = truncated
    return trace


def trace_call(source: str, call: str, *, max_events: int = 10_000, max_bytes: int = 200_000,
               max_repr: int = 200, filename: str = "<candidate>", namespace: dict | None = None,
               implementation: str | None = None) -> Trace:
    """Compile `source` as `filename`, exec it, and trace the evaluation of the expression `call`.

    Raises SyntaxError for an invalid program (or call). Exceptions raised by the program are recorded in
    the trace's result, not raised. The previous trace function (`sys.gettrace()`) is restored afterwards.
    """
    code = compile(source, filename, "exec")
    return trace_code(code, call, max_events=max_events, max_bytes=max_bytes, max_repr=max_repr,
                      namespace=namespace, implementation=implementation)
