"""Render a `Trace` into prompt text: pure functions of (trace, source), registered by format name.

Formats:

- `inline` (NExT, Ni et al. 2024): every source line, and after each line that recorded something a comment
  listing its states in execution order with their global step numbers:
  `x = f(y)  # (3) x=1; (7) x=2`. A state is `name=value` pairs joined by ", " (a call's arguments, the
  locals a line changed, `__return__=...`, `__yield__=...` or `__exception__=...`). A line with more than
  three states shows the first two, `...`, then the last. Lines never executed, or executed without a
  visible effect, get no comment. A multi-line statement gets its comment on its last line (for compound
  statements, the last line of the header), where a comment is always legal Python; a function's call step
  (its arguments) goes on its `def` header. A cut trace ends with a `# (trace truncated)` line.
- `scratchpad` (Nye et al. 2021, for ablations): the source, a blank line, then one line per step with the
  full state of the current frame after it, indented two spaces per call depth:
  `[step 3] line 5: x=1, ys=[1, 2]`; call/return/yield/exception steps say so and name the function
  (`[step 0] line 1 call f: xs=[1, 2]`, `[step 9] line 6 return f: total=3, __return__=3`). The state is
  rebuilt per frame by accumulating changes. Last come `[result] return <repr>` or
  `[result] exception <Type>: <message> (line N)`, and `[truncated]` for a cut trace.
- `none`: the source unchanged.

Line numbers in both formats are those of the statement anchors described above.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType

from next_jax.execution import astparse
from next_jax.execution.tracer import Step, Trace

__all__ = ["RENDERERS", "register_renderer", "render", "statement_anchors"]

Renderer = Callable[[Trace, str], str]
RENDERERS: dict[str, Renderer] = {}

_MAX_STATES_PER_LINE = 3
_NEWLINE = re.compile(r"\r\n|\r|\n")  # Python's own line terminators (str.splitlines knows more)
_BLOCK_FIELDS = ("body", "orelse", "finalbody", "handlers", "cases")


def register_renderer(name: str) -> Callable[[Renderer], Renderer]:
    """Decorator adding a `(trace, source) -> str` renderer to RENDERERS under `name`."""

    def add(fn: Renderer) -> Renderer:
        if name in RENDERERS:
            raise ValueError(f"renderer {name!r} is already registered")
        RENDERERS[name] = fn
        return fn

    return add


def render(trace: Trace, source: str, fmt: str) -> str:
    """Render `trace` of the program `source` in the format `fmt` (a key of RENDERERS)."""
    try:
        renderer = RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown trace format {fmt!r}; known: {sorted(RENDERERS)}") from None
    return renderer(trace, source)


@functools.lru_cache(maxsize=256)  # rendering one program in several formats parses it once
def statement_anchors(source: str) -> Mapping[int, int]:
    """Map each line of a statement to the line that carries its comment (see module docstring).

    Lines outside any statement are absent; an unparsable source gives an empty map.
    """
    try:
        tree = astparse.parse(source)
    except (SyntaxError, ValueError):
        return MappingProxyType({})
    anchors: dict[int, int] = {}
    _anchor_block(tree.body, anchors)
    return MappingProxyType(anchors)  # read-only: the cache hands the same map to every caller


def _anchor_block(nodes: list, anchors: dict[int, int]) -> None:
    for node in nodes:
        blocks = [getattr(node, field, None) or [] for field in _BLOCK_FIELDS]
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        if any(blocks):
            last = _header_end(node)
        else:
            last = node.end_lineno or node.lineno
        for line in range(first, last + 1):
            anchors[line] = last
        for block in blocks:
            for child in block:
                if isinstance(child, ast.match_case):
                    _anchor_block(child.body, anchors)
                else:
                    _anchor_block([child], anchors)


def _header_end(node: ast.AST) -> int:
    """Last line of a compound statement's header: where its last header expression ends."""
    end = node.lineno
    for field, value in ast.iter_fields(node):
        if field in _BLOCK_FIELDS or field == "decorator_list":
            continue
        for part in value if isinstance(value, list) else [value]:
            if isinstance(part, ast.AST):
                for sub in ast.walk(part):
                    end = max(end, getattr(sub, "end_lineno", None) or end)
    return end


def _source_lines(source: str) -> list[str]:
    return _NEWLINE.split(source)


def _anchor(anchors: Mapping[int, int], line: int) -> int:
    return anchors.get(line, line)


def _state_text(changes: dict[str, str]) -> str:
    return ", ".join(f"{name}={value}" for name, value in changes.items())


@register_renderer("none")
def render_none(trace: Trace, source: str) -> str:
    """The program without any trace (the no-trace ablation)."""
    return source


@register_renderer("inline")
def render_inline(trace: Trace, source: str) -> str:
    """The NExT inline format: each executed line followed by `# (k) var=value; ...`."""
    anchors = statement_anchors(source)
    states: dict[int, list[str]] = {}
    for step in trace.steps:
        if step.changes:
            states.setdefault(_anchor(anchors, step.line), []).append(f"({step.step}) {_state_text(step.changes)}")
    out = []
    for number, text in enumerate(_source_lines(source), start=1):
        shown = states.get(number)
        if shown:
            if len(shown) > _MAX_STATES_PER_LINE:
                shown = [shown[0], shown[1], "...", shown[-1]]
            text = f"{text.rstrip()}  # {'; '.join(shown)}"
        out.append(text)
    if trace.truncated:
        if out and out[-1] == "":
            out.pop()
        out.append("# (trace truncated)")
    return "\n".join(out)


@register_renderer("scratchpad")
def render_scratchpad(trace: Trace, source: str) -> str:
    """Source, then the full frame state after every step (Nye et al. 2021 scratchpad)."""
    anchors = statement_anchors(source)
    frames: dict[int, dict[str, str]] = {}
    out = [source.rstrip("\r\n"), ""]
    for step in trace.steps:
        state = frames.setdefault(step.frame, {})
        extra = {}
        for name, value in step.changes.items():
            if name.startswith("__") and name.endswith("__") and step.event != "line":
                extra[name] = value  # __return__ etc. belong to this step only
            else:
                state[name] = value
        out.append(_scratch_line(step, anchors, {**state, **extra}))
    out.append(_result_line(trace, anchors))
    if trace.truncated:
        out.append("[truncated]")
    return "\n".join(out)


def _scratch_line(step: Step, anchors: Mapping[int, int], state: dict[str, str]) -> str:
    event = "" if step.event == "line" else f" {step.event} {step.func}"
    body = _state_text(state) if state else "(no locals)"
    return f"{'  ' * step.depth}[step {step.step}] line {_anchor(anchors, step.line)}{event}: {body}"


def _result_line(trace: Trace, anchors: Mapping[int, int]) -> str:
    exc = trace.exception
    if exc is None:
        return f"[result] return {trace.returned}"
    where = "" if exc.line is None else f" (line {_anchor(anchors, exc.line)})"
    return f"[result] exception {exc.type}: {exc.message}{where}"
