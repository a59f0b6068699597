"""Split a model completion into its rationale and its fixed program.

The target format (see `prompts.py`) is a rationale followed by the fixed program in one fenced block. Models
do not always comply, so the parser recovers what it can and names each failure with a distinct status that
the verifier records in place of running the code:

- `parse_empty`: nothing but whitespace.
- `parse_no_code`: no fenced block and no definition of the entry point in the text.
- `parse_missing_entry_point`: code was found, but no block defines the entry point.
- `parse_truncated`: the last fence was never closed and what follows it is not a complete program, or the
  last `Fix:` line never closes (the usual sign of a completion cut by the length limit).
- `parse_edit_mismatch`: (edit answers) a `Fix:` line whose old text is not a line of the buggy program, or
  that is malformed.

Where the buggy program is given, a completion without a fenced program may answer with line edits
(`edits.py`: a `Fix:` line per changed line); the edits are applied to the buggy program and the result is the fix.

Recoveries that still count as `ok` (recorded in `ParsedCompletion.notes`): several fences (the last block
that defines the entry point wins: models draft and then correct), an unclosed final fence whose content
parses, unfenced code (the longest run of lines from the first top-level `def`/`import` that parses, which
drops trailing prose), prose after the closing fence (ignored).
"""

from __future__ import annotations

import dataclasses
import re

from next_jax.data import edits as edits_lib
from next_jax.execution import astparse

PARSE_OK = "ok"
PARSE_EMPTY = "parse_empty"
PARSE_NO_CODE = "parse_no_code"
PARSE_MISSING_ENTRY_POINT = "parse_missing_entry_point"
PARSE_TRUNCATED = "parse_truncated"
PARSE_EDIT_MISMATCH = "parse_edit_mismatch"
PARSE_STATUSES = (PARSE_EMPTY, PARSE_NO_CODE, PARSE_MISSING_ENTRY_POINT, PARSE_TRUNCATED, PARSE_EDIT_MISMATCH)

# The header line the prompt format puts between rationale and code; stripped from the rationale.
FIX_HEADER = "Fixed program:"

_OPEN = re.compile(r"^\s*```\s*([A-Za-z0-9_+.-]*)\s*$")
_CLOSE = re.compile(r"^\s*```\s*$")
_TOPLEVEL_START = re.compile(r"^(def |async def |class |import |from \S+ import |@)")


@dataclasses.dataclass(frozen=True)
class ParsedCompletion:
    """Result of parsing one completion. `code` is empty unless `status == "ok"`."""

    status: str
    rationale: str
    code: str
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == PARSE_OK


@dataclasses.dataclass(frozen=True)
class _Block:
    start: int  # line index of the opening fence
    end: int  # line index of the closing fence (len(lines) when unclosed)
    body: str
    closed: bool


def _blocks(lines: list[str]) -> list[_Block]:
    blocks: list[_Block] = []
    i = 0
    while i < len(lines):
        if _OPEN.match(lines[i]):
            j = i + 1
            while j < len(lines) and not _CLOSE.match(lines[j]):
                j += 1
            blocks.append(_Block(i, j, "\n".join(lines[i + 1 : j]), closed=j < len(lines)))
            i = j + 1
        else:
            i += 1
    return blocks


def _parses(code: str) -> bool:
    try:
        astparse.parse(code)
    except (SyntaxError, ValueError):  # ValueError: null bytes
        return False
    return True


def _defines(code: str, entry_point: str | None) -> bool:
    if entry_point is None:
        return re.search(r"^\s*(async\s+)?def\s+\w+\s*\(", code, re.M) is not None
    return re.search(rf"^\s*(async\s+)?def\s+{re.escape(entry_point)}\s*\(", code, re.M) is not None


def _rationale(lines: list[str], end: int) -> str:
    text = "\n".join(lines[:end]).rstrip()
    if text.endswith(FIX_HEADER):
        text = text[: -len(FIX_HEADER)].rstrip()
    return text.strip()


def _unfenced(lines: list[str], entry_point: str | None) -> tuple[int, str] | None:
    """Start line and code of the longest parsing run of top-level code, if it defines the entry point."""
    for start, line in enumerate(lines):
        if not _TOPLEVEL_START.match(line):
            continue
        for end in range(len(lines), start, -1):  # longest prefix first: trailing prose is what fails
            code = "\n".join(lines[start:end]).rstrip()
            if _parses(code) and _defines(code, entry_point):
                return start, code
    return None


def _from_edits(lines: list[str], buggy_code: str, entry_point: str | None) -> ParsedCompletion:
    start = edits_lib.first_edit_line(lines)
    assert start is not None
    rationale = _rationale(lines, start)
    status, code = edits_lib.apply_edits(buggy_code, lines[start:])
    if status == edits_lib.EDIT_TRUNCATED:
        return ParsedCompletion(PARSE_TRUNCATED, rationale, "", ("edits",))
    if status != edits_lib.EDIT_OK:
        return ParsedCompletion(PARSE_EDIT_MISMATCH, rationale, "", ("edits",))
    if not _defines(code, entry_point):
        return ParsedCompletion(PARSE_MISSING_ENTRY_POINT, rationale, "", ("edits",))
    return ParsedCompletion(PARSE_OK, rationale, code, ("edits",))


def parse_completion(text: str, entry_point: str | None = None, buggy_code: str | None = None) -> ParsedCompletion:
    """Parse a completion into rationale and fixed program; `entry_point` is the function the fix must define.
    With `buggy_code`, a completion without a fenced program may answer with `Fix:` line edits of it."""
    if not text.strip():
        return ParsedCompletion(PARSE_EMPTY, "", "")
    lines = text.replace("\r\n", "\n").split("\n")
    blocks = _blocks(lines)
    if buggy_code and not blocks and edits_lib.first_edit_line(lines) is not None:
        return _from_edits(lines, buggy_code, entry_point)
    closed = [b for b in blocks if b.closed]
    notes: list[str] = []
    if len(closed) > 1:
        notes.append("several_fences")
    for b in reversed(closed):
        if _defines(b.body, entry_point):
            if any(line.strip() for line in lines[b.end + 1 :]):
                notes.append("text_after_code")
            return ParsedCompletion(PARSE_OK, _rationale(lines, b.start), b.body.strip("\n"), tuple(notes))
    tail = blocks[-1] if blocks and not blocks[-1].closed else None
    if tail is not None and _defines(tail.body, entry_point):
        if _parses(tail.body):
            notes.append("unclosed_fence")
            return ParsedCompletion(
                PARSE_OK, _rationale(lines, tail.start), tail.body.strip("\n"), tuple(notes)
            )
        return ParsedCompletion(PARSE_TRUNCATED, _rationale(lines, tail.start), "", tuple(notes))
    if not blocks:
        found = _unfenced(lines, entry_point)
        if found is not None:
            start, code = found
            return ParsedCompletion(PARSE_OK, _rationale(lines, start), code, ("unfenced",))
    rationale = _rationale(lines, blocks[0].start if blocks else len(lines))
    has_code = bool(blocks) or _defines(text, None)
    if tail is not None and not tail.body.strip():
        return ParsedCompletion(PARSE_TRUNCATED, rationale, "", tuple(notes))
    status = PARSE_MISSING_ENTRY_POINT if has_code else PARSE_NO_CODE
    return ParsedCompletion(status, rationale, "", tuple(notes))
