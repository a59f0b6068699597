"""The NExT repair prompt and its target, with a token budget.

Prompt layout (our own; the paper did not release its prompts):

    <instruction>
    ### Task
    <NL description>
    ### Buggy program            (inline: annotated with the trace of the first failing test)
    ```python ... ```
    ### Trace of `<call>`        (one per further traced test; inline: annotated copy, scratchpad: step list)
    ### Failing tests
    assert ...  # got: <value> | # raised: <Type: message>
    ### Note                     (only when the budget forced something out)
    ### Answer

The target is a rationale, then `Fixed program:` and the program in one fenced block (`format_target`), which
`parsing.parse_completion` inverts. Over the token budget, traces of later tests are dropped first, then loops
are shortened (a line visited more than twice keeps its first and last visits), then all traces go; the prompt
says what was left out. Code and tests are never cut, so a prompt may still exceed the budget (`fits=False`).
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from next_jax.data.edits import edits_between
from next_jax.data.example import RepairExample
from next_jax.data.parsing import FIX_HEADER
from next_jax.data.trace_cache import TraceFn
from next_jax.execution import astparse
from next_jax.execution.render import render
from next_jax.execution.tracer import Trace, trace_call

TRACE_FORMATS = ("inline", "scratchpad", "none")
LAYOUTS = ("markdown", "compact")
ANSWERS = ("program", "edits")
INSTRUCTION = (
    "The Python program below fails some of its tests. Using its execution trace, explain step by step what "
    "goes wrong, then write the fixed program."
)
EXEMPLAR_SEPARATOR = "\n\n"


def byte_length(text: str) -> int:
    """Token count under a byte-level vocabulary."""
    return len(text.encode("utf-8"))


@dataclasses.dataclass(frozen=True)
class Prompt:
    """A rendered prompt and what the budget did to it."""

    text: str
    tokens: int
    fits: bool
    traced_tests: tuple[int, ...]  # indices into the example's tests whose traces are shown
    dropped_traces: tuple[int, ...]
    loops_shortened: bool


def in_process_tracer(**budgets: int) -> TraceFn:
    """Trace in this process with `trace_call` (trusted or already-vetted programs only)."""

    def trace(code: str, call: str) -> dict[str, Any]:
        return trace_call(code, call, **budgets).to_json()

    return trace


def pool_tracer(pool: Any, **budgets: int) -> TraceFn:
    """Trace in the verification pool's sandbox (untrusted programs).

    A program that cannot be traced (it hangs past the pool's time limit, or its sandbox dies) yields
    `{"error": ...}` instead of raising, so a trace cache remembers the failure and does not retry it.
    """

    def trace(code: str, call: str) -> dict[str, Any]:
        try:
            return pool.trace(code, call, **budgets).to_json()
        except (TimeoutError, RuntimeError, SyntaxError) as e:
            return {"error": f"{type(e).__name__}: {e}"}

    return trace


def call_of_test(test: str, entry_point: str) -> str | None:
    """The outermost call of `entry_point` in a test statement, as written; None if there is none."""
    try:
        tree = astparse.parse(test)
    except SyntaxError:
        return None
    for node in ast.walk(tree):  # breadth-first, so the outermost call is found first
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == entry_point:
            return ast.get_source_segment(test, node)
    return None


def shorten_loops(trace: dict[str, Any], carry_changes: bool = False) -> dict[str, Any]:
    """A copy of a trace JSON keeping only the first and last execution of each line.

    Call, return and exception events are always kept. With `carry_changes`, a dropped step's changes move
    to the next kept step of the same frame, so renderers that accumulate full state (scratchpad) still show
    correct values there; the inline format attributes changes to lines, so it must not carry them.
    """
    steps = trace.get("steps", [])
    visits: dict[int, list[int]] = {}
    for i, st in enumerate(steps):
        if st.get("event", "line") == "line":
            visits.setdefault(st["line"], []).append(i)
    drop = {i for idx in visits.values() for i in idx[1:-1]}
    out: list[dict[str, Any]] = []
    carry: dict[Any, dict[str, str]] = {}
    for i, st in enumerate(steps):
        frame = st.get("frame", st.get("depth", 0))
        if i in drop:
            if carry_changes:
                carry.setdefault(frame, {}).update(st.get("changes", {}))
            continue
        pending = carry.pop(frame, None)
        out.append({**st, "changes": {**pending, **st.get("changes", {})}} if pending else st)
    return {**trace, "steps": out}


def _outcome(trace: dict[str, Any] | None) -> str:
    if trace is None:
        return ""
    result = trace.get("result") or {}
    if "return" in result:
        return f"  # got: {result['return']}"
    exc = result.get("exception")
    if exc:
        return f"  # raised: {exc.get('type')}: {exc.get('message')}"
    return ""


def _fenced(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```"


def _steps_only(rendered: str, source: str) -> str:
    """The scratchpad without the copy of the program it starts with (the prompt shows the program once)."""
    src = source.rstrip("\n")
    return rendered[len(src) :].lstrip("\n") if rendered.startswith(src) else rendered


def _render(
    example: RepairExample,
    fmt: str,
    traces: dict[int, dict[str, Any]],
    calls: dict[int, str],
    traced: Sequence[int],
    dropped: Sequence[int],
    shortened: bool,
    instruction: bool = True,
    max_failing_shown: int = 0,
    layout: str = "markdown",
) -> str:
    failing = _shown_failing(example, traced, max_failing_shown)
    if layout == "compact":
        return _render_compact(example, fmt, traces, calls, traced, dropped, shortened, failing)
    parts = [INSTRUCTION, ""] if instruction else []
    parts += ["### Task", example.description.strip(), ""]
    rendered = {i: render(Trace.from_json(traces[i]), example.buggy_code, fmt) for i in traced}
    if fmt == "inline" and traced:
        # The annotated program is the program: the first trace costs no second copy of the code.
        first = traced[0]
        parts += [f"### Buggy program (with the trace of `{calls[first]}`)", _fenced(rendered[first]), ""]
        rest = traced[1:]
    else:
        parts += ["### Buggy program", _fenced(example.buggy_code), ""]
        rest = traced
    for i in rest:
        body = (
            _fenced(rendered[i]) if fmt == "inline" else _steps_only(rendered[i], example.buggy_code).rstrip()
        )
        parts += [f"### Trace of `{calls[i]}`", body, ""]
    parts.append("### Failing tests")
    parts += [example.tests[i] + _outcome(traces.get(i)) for i in failing]
    parts.append("")
    notes = []
    if dropped:
        which = ", ".join(f"`{calls[i]}`" for i in dropped)
        notes.append(f"The traces of {which} are omitted to fit the length budget.")
    if shortened:
        notes.append("Loops in the trace are shortened: each line shows only its first and last execution.")
    if notes:
        parts += ["### Note", *notes, ""]
    parts.append("### Answer")
    return "\n".join(parts) + "\n"


def _shown_failing(example: RepairExample, traced: Sequence[int], limit: int) -> list[int]:
    """The failing tests a prompt lists: traced ones first, at most `limit` (0: all)."""
    order = [*traced, *(i for i in example.failing_tests if i not in traced)]
    return order[:limit] if limit > 0 else order


def _render_compact(
    example: RepairExample,
    fmt: str,
    traces: dict[int, dict[str, Any]],
    calls: dict[int, str],
    traced: Sequence[int],
    dropped: Sequence[int],
    shortened: bool,
    failing: Sequence[int],
) -> str:
    """One comment line per section and no fences: the markdown layout's headers cost a byte-level model
    about 100 tokens per prompt that carry nothing it needs (the tiny default trains on every one)."""
    rendered = {i: render(Trace.from_json(traces[i]), example.buggy_code, fmt) for i in traced}
    parts = [f"# Task: {' '.join(example.description.split())}"]
    if fmt == "inline" and traced:
        first = traced[0]
        parts += [f"# Buggy, traced on {calls[first]}:", rendered[first].rstrip()]
        rest = traced[1:]
    else:
        parts += ["# Buggy:", example.buggy_code.rstrip()]
        rest = traced
    for i in rest:
        body = rendered[i] if fmt == "inline" else _steps_only(rendered[i], example.buggy_code)
        parts += [f"# Trace of {calls[i]}:", body.rstrip()]
    parts += [f"# Fails: {example.tests[i]}{_outcome(traces.get(i))}" for i in failing]
    if dropped:
        parts.append("# Note: traces of " + ", ".join(calls[i] for i in dropped) + " omitted for length.")
    if shortened:
        parts.append("# Note: loops shortened to each line's first and last execution.")
    parts.append("# Answer:")
    return "\n".join(parts) + "\n"


def build_prompt(
    example: RepairExample,
    fmt: str = "inline",
    *,
    tracer: TraceFn | None = None,
    budget: int | None = None,
    count_tokens: Callable[[str], int] = byte_length,
    max_traced_tests: int = 3,
    prefix: str = "",
    instruction: bool = True,
    max_failing_shown: int = 0,
    layout: str = "markdown",
) -> Prompt:
    """Render the NExT prompt for `example` (with an optional few-shot `prefix`) within `budget` tokens.

    The failing tests' outcomes (`# got: ...`) come from their traces, so pass a `tracer` for every format:
    with `fmt="none"` the steps are left out but the tests, expected and actual outputs stay, and the trace
    is the only difference between the arms of an ablation. `instruction=False` drops the opening
    instruction line (compact prompts for small models that never read it). `max_failing_shown` lists at
    most that many failing tests, traced ones first (0: all); `layout="compact"` uses one comment line per
    section instead of markdown headers and fences (no instruction).
    """
    if fmt not in TRACE_FORMATS:
        raise ValueError(f"unknown trace format {fmt!r}; expected one of {TRACE_FORMATS}")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown prompt layout {layout!r}; expected one of {LAYOUTS}")
    calls: dict[int, str] = {}
    traces: dict[int, dict[str, Any]] = {}
    for i in example.failing_tests:
        call = call_of_test(example.tests[i], example.entry_point)
        if call is None:
            continue
        calls[i] = call
        if tracer is not None:
            try:
                trace = tracer(example.buggy_code, call)
            except Exception:  # noqa: BLE001 - an untraceable test is shown without its trace, not fatal
                continue
            if "error" not in trace:  # a cached tracing failure (see `pool_tracer`)
                traces[i] = trace
    if fmt == "none":
        candidates = []
    else:
        candidates = [i for i in example.failing_tests if i in traces][:max_traced_tests]

    def attempt(traced: Sequence[int], shortened: bool) -> Prompt:
        shown = {i: shorten_loops(t, fmt == "scratchpad") if shortened else t for i, t in traces.items()}
        dropped = [i for i in candidates if i not in traced]
        text = prefix + _render(example, fmt, shown, calls, traced, dropped, shortened, instruction,
                                max_failing_shown, layout)
        n = count_tokens(text)
        return Prompt(text, n, budget is None or n <= budget, tuple(traced), tuple(dropped), shortened)

    p = attempt(candidates, False)
    for keep in range(len(candidates) - 1, 0, -1):  # drop later tests' traces first
        if p.fits:
            return p
        p = attempt(candidates[:keep], False)
    if not p.fits and candidates:
        p = attempt(candidates[:1], True)
    if not p.fits and candidates:
        p = attempt([], False)
    return p


def _program_prompt(description: str, layout: str, shown: tuple[str, str] | None = None) -> str:
    """The task (and, given `shown` = (title, program text), a program section) in `layout`, ending like a
    repair prompt of that layout."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown prompt layout {layout!r}; expected one of {LAYOUTS}")
    task = " ".join(description.split())
    if layout == "compact":
        section = f"# {shown[0]}:\n{shown[1].rstrip()}\n" if shown else ""
        return f"# Task: {task}\n{section}# Answer:\n"
    section = f"### {shown[0]}\n{_fenced(shown[1])}\n\n" if shown else ""
    return f"### Task\n{task}\n\n{section}### Answer\n"


def program_pair(description: str, code: str, layout: str = "markdown") -> dict[str, str]:
    """A pretraining pair in a repair prompt's own layout: the task as the prompt, and as the target the
    program in the form a repair target ends with (`Fixed program:` and the fenced code), so that what a
    base model learns from programs carries over to the answers of repair prompts."""
    return {"prompt": _program_prompt(description, layout), "target": f"{FIX_HEADER}\n{_fenced(code)}\n"}


def reading_pair(description: str, code: str, call: str, fmt: str, *, tracer: TraceFn | None = None,
                 layout: str = "markdown", budget: int | None = None) -> dict[str, str]:
    """A pretraining pair that teaches reading a program as repair prompts show it: the task and a correct
    program, traced on `call` in trace format `fmt` (as a repair prompt shows its buggy program), and as the
    target the program itself in a repair target's closing form (`program_pair`). A base model learns from
    these to carry a program from its prompt into its answer, across a trace's annotations; which line a
    bug sits in and how to fix it, it learns from repair demonstrations alone. Over `budget` bytes the trace's
    loops are shortened (as `build_prompt` does)."""
    if fmt not in TRACE_FORMATS:
        raise ValueError(f"unknown trace format {fmt!r}; expected one of {TRACE_FORMATS}")
    target = program_pair(description, code, layout=layout)["target"]
    if fmt == "none" or tracer is None:
        return {"prompt": _program_prompt(description, layout, ("Program", code)), "target": target}
    trace = tracer(code, call)
    title = f"Program, traced on {call}"
    prompt = _program_prompt(description, layout, (title, render(Trace.from_json(trace), code, fmt)))
    if budget is not None and len(prompt.encode()) > budget:
        shorter = render(Trace.from_json(shorten_loops(trace, fmt == "scratchpad")), code, fmt)
        prompt = _program_prompt(description, layout, (title, shorter))
    return {"prompt": prompt, "target": target}


def format_target(rationale: str, code: str, buggy: str | None = None) -> str:
    """The training target: rationale, then the fixed program in one fenced block; given the `buggy` program,
    `Fix:` line edits of it instead, where the fix is expressible as such (`edits.edits_between`)."""
    edits = edits_between(buggy, code) if buggy is not None else None
    if edits:
        head = f"{rationale.strip()}\n" if rationale.strip() else ""
        return f"{head}{edits}\n"
    head = f"{rationale.strip()}\n\n" if rationale.strip() else ""
    return f"{head}{FIX_HEADER}\n{_fenced(code)}\n"
