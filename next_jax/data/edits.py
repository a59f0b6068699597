r"""Line edits: a short answer format in which a fix names the buggy lines and what replaces them.

A completion in this format ends with its edits, one line each:

    `f(8)` returns 1, not 20160.
    Fix: `for k in range(m + 1, 3):` -> `for k in range(3, m + 1):`

- `Fix: \`old\` -> \`new\``: the first line of the buggy program not already edited whose text, surrounding
  whitespace ignored, is `old` becomes `new` at the old line's indentation; an empty `new` deletes it.
- `Add: \`line\``: inserts `line`, indentation as written, after the line the previous edit touched (an
  insertion after line L is `Fix: \`L\` -> \`L\`` followed by `Add:` lines).

Applying the edits gives the full fixed program, which is verified like any other.

Why: a small model writes a fix by copying the buggy line it has just quoted and changing a token, instead of
copying a whole program byte for byte (a ~1M-parameter byte decoder mangles the copy far more often than it
gets the edit wrong). A fix that edits cannot express (a re-indented line, say) is written as a full program
instead (`edits_between` returns None).
"""

from __future__ import annotations

import difflib
import re

EDIT_PREFIX = "Fix: "
ADD_PREFIX = "Add: "
_EDIT = re.compile(r"^Fix: `(.*)` -> `(.*)`\s*$")
_ADD = re.compile(r"^Add: `(.*)`\s*$")

EDIT_OK = "ok"
EDIT_NONE = "no_edit"  # no `Fix:` line at all
EDIT_TRUNCATED = "truncated"  # a last edit line that never closes
EDIT_MISMATCH = "mismatch"  # an old text that is not a line of the program, or a malformed edit line


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _diff_edits(a: list[str], b: list[str]) -> list[str] | None:
    """Edit lines for the line diff of `a` -> `b`: replacements pair up, the rest are deletions or `Add:`s
    after the last replaced (or anchoring) line."""
    out: list[str] = []
    for tag, i, i_end, j, j_end in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        olds, news = a[i:i_end], b[j:j_end]
        if not olds:  # pure insertion: anchor on the line before it
            if i == 0 or not a[i - 1].strip():
                return None
            olds, news = [a[i - 1]], [a[i - 1], *news]
        pairs = list(zip(olds, news, strict=False))
        for old, new in pairs:
            if new.strip() and _indent(new) != _indent(old):
                return None
            out.append(f"{EDIT_PREFIX}`{old.strip()}` -> `{new.strip()}`")
        out += [f"{EDIT_PREFIX}`{old.strip()}` -> ``" for old in olds[len(pairs):]]
        out += [f"{ADD_PREFIX}`{new}`" for new in news[len(pairs):]]
    return out


def edits_between(buggy: str, fixed: str) -> str | None:
    """The edit lines that turn `buggy` into `fixed`, or None where there are none or they would not
    reproduce `fixed` exactly (a re-indented line, an edited line whose text occurs earlier, ...)."""
    a, b = buggy.strip("\n").splitlines(), fixed.strip("\n").splitlines()
    lines = _diff_edits(a, b)
    if not lines or not all(line.isprintable() for line in lines):
        return None
    status, program = apply_edits(buggy, lines)
    return "\n".join(lines) if status == EDIT_OK and program == "\n".join(b) else None


def first_edit_line(lines: list[str]) -> int | None:
    """Index of the first line that starts an edit, if any."""
    return next((i for i, line in enumerate(lines) if line.startswith((EDIT_PREFIX, ADD_PREFIX))), None)


def apply_edits(buggy: str, lines: list[str]) -> tuple[str, str]:
    """(status, fixed program) from the edit lines among `lines` (other lines are ignored); the program is
    empty unless the status is ok."""
    edits = [line for line in lines if line.startswith((EDIT_PREFIX, ADD_PREFIX))]
    if not edits or not edits[0].startswith(EDIT_PREFIX):
        return (EDIT_NONE if not edits else EDIT_MISMATCH), ""
    program: list[str | None] = list(buggy.strip("\n").splitlines())
    added: dict[int, list[str]] = {}  # buggy line index -> lines inserted after it
    done: set[int] = set()
    at = -1
    for n, line in enumerate(edits):
        fix, add = _EDIT.match(line.rstrip("\n")), _ADD.match(line.rstrip("\n"))
        if fix is None and add is None:
            return (EDIT_TRUNCATED if n == len(edits) - 1 else EDIT_MISMATCH), ""
        if add is not None:
            added.setdefault(at, []).append(add.group(1).rstrip())
            continue
        old, new = fix.group(1).strip(), fix.group(2).strip()
        at = next((k for k, text in enumerate(program)
                   if k not in done and text is not None and text.strip() == old and old), -1)
        if at < 0:
            return EDIT_MISMATCH, ""
        done.add(at)
        program[at] = _indent(program[at] or "") + new if new else None
    out: list[str] = []
    for k, text in enumerate(program):
        if text is not None:
            out.append(text)
        out += added.get(k, [])
    return EDIT_OK, "\n".join(out)
