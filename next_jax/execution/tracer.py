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

Two recorders record exactly the same steps: `pyrecorder.Recorder` (pure Python, a `sys.settrace` function) and
the C event loop in `_ctracer.c` (a `PyEval_SetTrace` function that calls back into this package only to render
values), used wherever it was built; `implementation=` / NEXT_JAX_TRACER=python choose.

JSON form (`Trace.to_json()`): `{"steps": [{"step", "line", "event", "func", "depth", "frame", "changes"}],
"result": {"return": repr} | {"exception": {"type", "message", "line"}}, "truncated": bool}`. `frame` numbers
function invocations in call order, which lets renderers rebuild each frame's full state from its changes.
"""

from __future__ import annotations

import builtins
import functools
import os
import sys
from dataclasses import dataclass
from types import CodeType
from typing import Any, NamedTuple

from next_jax.execution.pyrecorder import SCALARS, SKIP, Recorder
from next_jax.execution.saferepr import safe_repr, type_name
from next_jax.execution.shapes import IMMUTABLE, render_with_shape, unchanged

try:  # the same recorder's event loop in C (_ctracer.c), built at install time where a compiler exists
    from next_jax.execution import _ctracer
except ImportError:  # pragma: no cover - the pure-Python recorder below records the same steps, slower
    _ctracer = None

__all__ = ["IMPLEMENTATIONS", "Step", "Trace", "TraceException", "default_implementation", "trace_call",
           "trace_code"]

# "c": the C event loop with Python rendering; "python": `pyrecorder.Recorder`. Both record the same steps.
IMPLEMENTATIONS = ("c", "python") if _ctracer is not None else ("python",)


def default_implementation() -> str:
    """"c" where it was built, unless NEXT_JAX_TRACER=python (read at import) asks for the pure-Python one."""
    return _DEFAULT


_DEFAULT = "python" if _ctracer is None or os.environ.get("NEXT_JAX_TRACER") == "python" else "c"

CALL_FILENAME = "<trace-call>"


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
    _ctracer.configure(sys.settrace, safe_repr, render_with_shape, unchanged, IMMUTABLE, SKIP, Step)


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
    plain = type(args) is tuple and set(map(type, args)) <= SCALARS
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
        rec = Recorder(filename, max_events, max_bytes, max_repr, sys._getframe(), previous)
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
