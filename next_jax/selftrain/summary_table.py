"""The run's summary table (base, control, each iteration) as cells, and as the plain text a run prints last.

`summary_table` is shared with the HTML report so the page and the terminal show the same rows and columns.
Every reader here is lenient: any EVAL may be null, keys may be missing or extra, iterations may be empty.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

MISSING = "-"
TRAIN_COUNTS = ("samples", "parsed", "passed", "kept")
STAGES = ("sample", "verify", "train", "eval")


@dataclasses.dataclass(frozen=True)
class Column:
    group: str
    name: str


@dataclasses.dataclass(frozen=True)
class SummaryTable:
    """String cells; `best_row` indexes `rows` (the best iteration), or is None."""

    columns: tuple[Column, ...]
    rows: tuple[tuple[str, ...], ...]
    best_row: int | None


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x)


def _dict(x: Any) -> Mapping[str, Any]:
    return x if isinstance(x, Mapping) else {}


def _pct(x: Any) -> str:
    v = _num(x)
    return MISSING if v is None else f"{100 * v:.1f}"


def _rate(ev: Any) -> str:
    """Greedy fix rate as a percentage with its stderr: '41.2 ± 1.3'."""
    ev = _dict(ev)
    rate = _num(ev.get("greedy_fix_rate"))
    if rate is None:
        return MISSING
    err = _num(ev.get("greedy_fix_rate_stderr"))
    return f"{100 * rate:.1f}" if err is None else f"{100 * rate:.1f} ± {100 * err:.1f}"


def _diff(x: Any) -> str:
    """A paired difference in points with its stderr: '+6.2 ± 2.4'."""
    d = _dict(x)
    mean, err = _num(d.get("greedy_fix_rate")), _num(d.get("stderr"))
    if mean is None:
        return MISSING
    return f"{100 * mean:+.1f}" if err is None else f"{100 * mean:+.1f} ± {100 * err:.1f}"


def _int(x: Any) -> str:
    v = _num(x)
    return MISSING if v is None else str(int(v))


def _secs(x: Any) -> str:
    v = _num(x)
    return MISSING if v is None else f"{v:.1f}"


def _k_sort_key(k: str) -> tuple[int, float, str]:
    try:
        return (0, float(k), k)
    except ValueError:
        return (1, 0.0, k)


def pass_at_k_keys(summary: Mapping[str, Any]) -> list[str]:
    """Every k that any traced EVAL reports, in numeric order."""
    evals = [summary.get("base"), summary.get("control")]
    evals += [_dict(it).get("dev") for it in iterations(summary)]
    keys = {str(k) for ev in evals for k in _dict(_dict(ev).get("pass_at_k"))}
    return sorted(keys, key=_k_sort_key)


def iterations(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    its = summary.get("iterations")
    return [it for it in its if isinstance(it, Mapping)] if isinstance(its, Sequence) else []


def summary_table(summary: Mapping[str, Any]) -> SummaryTable:
    """Rows: base, control, then each iteration; pass@k columns are of the traced dev evaluation."""
    ks = pass_at_k_keys(summary)
    columns = [Column("", "row"), Column("dev", "n"), Column("fix rate %", "trace"),
               Column("fix rate %", "no trace"), Column("fix rate %", "- control")]
    columns += [Column("pass@k %", f"@{k}") for k in ks]
    columns += [Column("train", name) for name in (*TRAIN_COUNTS, "solved", "trace share")]
    columns += [Column("seconds", s) for s in STAGES] + [Column("seconds", "sampler wait")]
    blank_train = [""] * (len(TRAIN_COUNTS) + 2 + len(STAGES) + 1)

    def eval_cells(ev: Any, ev_notrace: Any, minus_control: str) -> list[str]:
        pak = _dict(_dict(ev).get("pass_at_k"))
        return ([_int(_dict(ev).get("problems")), _rate(ev), _rate(ev_notrace), minus_control]
                + [_pct(pak.get(k)) for k in ks])

    # "- control" is an iteration's (paired by problem, summary.py): blank in the base and control rows.
    rows = [["base", *eval_cells(summary.get("base"), summary.get("base_notrace"), ""), *blank_train],
            ["control", *eval_cells(summary.get("control"), summary.get("control_notrace"), ""), *blank_train]]
    best = summary.get("best_iteration")
    best_row = None
    for it in iterations(summary):
        k = it.get("iteration")
        label = f"iter {k}"
        if best is not None and k == best:
            best_row = len(rows)
            label += " *"
        train, secs = _dict(it.get("train")), _dict(it.get("seconds"))
        solved = _int(train.get("problems_solved"))
        if solved != MISSING and _num(train.get("problems")) is not None:
            solved += f"/{_int(train.get('problems'))}"
        rows.append([label, *eval_cells(it.get("dev"), it.get("dev_notrace"), _diff(it.get("minus_control"))),
                     *(_int(train.get(c)) for c in TRAIN_COUNTS), solved, _pct(it.get("trace_share")),
                     *(_secs(secs.get(s)) for s in STAGES), _secs(it.get("sampler_wait_seconds"))])
    return SummaryTable(tuple(columns), tuple(tuple(r) for r in rows), best_row)


def format_summary_table(summary: Mapping[str, Any]) -> str:
    """The plain-text table printed at the end of a run: rates in percent with ± stderr; '*' marks the best."""
    table = summary_table(summary)
    grid = [[c.group for c in table.columns], [c.name for c in table.columns], *table.rows]
    # A group label is printed once, above its first column.
    grid[0] = [g if i == 0 or g != grid[0][i - 1] else "" for i, g in enumerate(grid[0])]
    widths = [max(len(row[i]) for row in grid) for i in range(len(table.columns))]
    lines = []
    for r, row in enumerate(grid):
        # Labels and group names read left-aligned; numbers right-aligned.
        cells = [cell.ljust(w) if i == 0 or r == 0 else cell.rjust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if r == 1:
            lines.append("-" * len(lines[-1]))
    title = f"run {summary.get('config_name', '?')} (seed {summary.get('seed', '?')})"
    footer = "* best iteration" if table.best_row is not None else "no best iteration"
    floor = summary.get("dev_floor")
    if floor:
        footer += (f"; test-blind floor (one random edit of the buggy program): {100 * floor['fix_rate']:.1f} "
                   f"± {100 * floor['fix_rate_stderr']:.1f}")
    return "\n".join([title, *lines, footer]) + "\n"
