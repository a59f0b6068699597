"""One self-contained HTML page for a self-training run: summary table, fix-rate figure, a browser of samples.

The page needs no network: CSS, JS, the figure (base64 PNG) and the data (JSON in a <script
type="application/json"> tag) are inline. Completions are model output and treated as hostile: the JSON is escaped
so no string can close its tag, and the page's script puts every string into the DOM with textContent only.

Filters can be preset from the URL hash, `report.html#status=pass&iteration=1&problem=abc` (status: all, pass,
not-pass or any status name; iteration: all or a number; problem: a substring of the example id). The page keeps
the hash in step with the controls, so a filtered view is a link; tests use the hash to check the filters.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import html
import json
import math
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from next_jax.data.example import iter_jsonl
from next_jax.selftrain.summary_table import SummaryTable, summary_table

_ITER_DIR = re.compile(r"iter_(\d+)")
_DETAILS_KEPT = 20  # verdict details per sample: the first failing tests are what a reader looks at


def write_report(run_dir: str | Path, out: str | Path | None = None, *, max_problems: int = 200,
                 max_samples_per_problem: int = 8, max_chars: int = 20_000) -> Path:
    """Write the run's report (default RUN/report.html) and return its path.

    At most `max_problems` problems (a fixed hash-ordered choice, so reruns show the same ones) and, per problem
    and iteration, `max_samples_per_problem` samples (statuses taken in turn so passes and failures both show)
    go into the page; strings are cut at `max_chars`. The page says how much was left out.
    """
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "report.html"
    summary = _read_summary(run_dir)
    data = collect_samples(run_dir, max_problems=max_problems, max_samples_per_problem=max_samples_per_problem,
                           max_chars=max_chars)
    page = render_page(summary, data, figure_png=_figure_png(summary), run_name=run_dir.resolve().name)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)  # a reader (or a browser refresh) never sees half a page
    return out


def _read_summary(run_dir: Path) -> dict[str, Any]:
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # a run that has not finished its first evaluation still gets a page of samples
    return summary if isinstance(summary, dict) else {}


def _figure_png(summary: Mapping[str, Any]) -> bytes | None:
    try:
        from next_jax.selftrain.plots import fix_rate_png
    except ImportError:  # matplotlib is a main dependency, but a page without the figure beats no page
        return None
    return fix_rate_png(summary)


# ----------------------------------------------------------------------------------------------------------
# Reading samples and verdicts


def _iteration_dirs(run_dir: Path) -> list[tuple[int, Path]]:
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if p.is_dir() and (m := _ITER_DIR.fullmatch(p.name))]
    return sorted(found)


def _shards(d: Path) -> list[Path]:
    # Only complete shards: temporary names (a stage still writing) do not end in .jsonl(.gz).
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_file() and p.name.endswith((".jsonl.gz", ".jsonl")))


def _records(paths: list[Path], warnings: list[str]) -> Iterator[dict[str, Any]]:
    """Records of every shard in order; a damaged shard is reported on the page, not fatal."""
    for path in paths:
        try:
            for rec in iter_jsonl(path):
                if isinstance(rec, dict):
                    yield rec
        except (OSError, EOFError, ValueError) as e:
            warnings.append(f"{path.parent.parent.name}/{path.parent.name}/{path.name}: stopped reading: {e}")


def _clip(s: Any, max_chars: int) -> str:
    s = s if isinstance(s, str) else ("" if s is None else str(s))
    return s if len(s) <= max_chars else s[:max_chars] + f"\n... [{len(s) - max_chars} more characters cut]"


def _clean(x: Any, max_chars: int, depth: int = 0) -> Any:
    """A JSON-safe copy: strings clipped, non-finite floats to None (JSON.parse rejects NaN), depth bounded."""
    if isinstance(x, str):
        return _clip(x, max_chars)
    if isinstance(x, bool) or x is None or isinstance(x, int):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if depth > 4:
        return _clip(repr(x), max_chars)
    if isinstance(x, Mapping):
        return {str(k): _clean(v, max_chars, depth + 1) for k, v in list(x.items())[:50]}
    if isinstance(x, list | tuple):
        return [_clean(v, max_chars, depth + 1) for v in x[:_DETAILS_KEPT]]
    return _clip(str(x), max_chars)


def _status(parse_status: str, verdict: Mapping[str, Any] | None) -> str:
    if verdict is not None:
        return str(verdict.get("status") or "invalid_record")
    return parse_status if parse_status != "ok" else "unverified"  # sampled, verification not done yet


def _pick_indexes(statuses: dict[int, str], cap: int) -> list[int]:
    """Up to `cap` sample indexes, taking statuses in turn (lowest index first in each) so all kinds show."""
    by_status: dict[str, list[int]] = collections.defaultdict(list)
    for index in sorted(statuses):
        by_status[statuses[index]].append(index)
    queues = [by_status[s] for s in sorted(by_status, key=lambda s: (s != "pass", s))]
    picked: list[int] = []
    while len(picked) < cap and any(queues):
        for q in queues:
            if q and len(picked) < cap:
                picked.append(q.pop(0))
    return sorted(picked)


def _problem_order(example_id: str) -> str:
    return hashlib.sha1(example_id.encode("utf-8", "surrogatepass")).hexdigest()


def collect_samples(run_dir: str | Path, *, max_problems: int = 200, max_samples_per_problem: int = 8,
                    max_chars: int = 20_000) -> dict[str, Any]:
    """The JSON the page embeds: chosen problems with prompts and samples, status counts, what was left out.

    Streams every shard (samples files can be large) and holds only the (example id, index, parse status) of
    all samples plus full records of the chosen ones.
    """
    run_dir = Path(run_dir)
    warnings: list[str] = []
    iters = _iteration_dirs(run_dir) if run_dir.is_dir() else []
    # Pass 1: which samples exist, with their parse status.
    parse: dict[int, dict[str, dict[int, str]]] = {}
    for k, d in iters:
        parse[k] = collections.defaultdict(dict)
        for rec in _records(_shards(d / "samples"), warnings):
            parse[k][str(rec.get("example_id"))][_as_int(rec.get("index"))] = str(rec.get("parse_status") or "ok")
    all_ids = {eid for per in parse.values() for eid in per}
    chosen = set(sorted(all_ids, key=_problem_order)[:max_problems])

    problems: dict[str, dict[str, Any]] = {eid: {"id": eid, "prompts": [], "samples": []} for eid in chosen}
    counts: dict[int, collections.Counter[str]] = {}
    for k, d in iters:
        # Pass 2: every verdict counts; the chosen problems' verdicts are kept (details trimmed).
        verdicts: dict[tuple[str, int], dict[str, Any]] = {}
        for rec in _records(_shards(d / "verdicts"), warnings):
            eid, index = str(rec.get("example_id")), _as_int(rec.get("index"))
            if index in parse[k].get(eid, {}):
                if eid in chosen:
                    verdicts[(eid, index)] = rec if len(rec.get("details") or ()) <= _DETAILS_KEPT else {
                        **rec, "details": list(rec["details"])[:_DETAILS_KEPT]}
                else:
                    verdicts[(eid, index)] = {"status": rec.get("status")}
        counts[k] = collections.Counter(_status(ps, verdicts.get((eid, i)))
                                        for eid, per in parse[k].items() for i, ps in per.items())
        wanted = {(eid, i) for eid in chosen & parse[k].keys()
                  for i in _pick_indexes({i: _status(ps, verdicts.get((eid, i))) for i, ps in parse[k][eid].items()},
                                         max_samples_per_problem)}
        # Pass 3: the chosen samples' text.
        for rec in _records(_shards(d / "samples"), warnings):
            key = (str(rec.get("example_id")), _as_int(rec.get("index")))
            if key in wanted:
                wanted.discard(key)  # a duplicated record (a resumed shard) shows once
                problems[key[0]]["samples"].append(_sample_json(k, rec, verdicts.get(key), max_chars))
        _add_prompts(k, d, problems, warnings, max_chars)

    for p in problems.values():
        p["samples"].sort(key=lambda s: (s["iteration"], s["index"]))
        p["prompts"] = _merge_prompts(p["prompts"])
    total_samples = sum(len(per_id) for per in parse.values() for per_id in per.values())
    shown_samples = sum(len(p["samples"]) for p in problems.values())
    return {
        "iterations": [k for k, _ in iters],
        "status_counts": {str(k): dict(sorted(c.items())) for k, c in counts.items()},
        "problems": [problems[eid] for eid in sorted(chosen)],
        "omitted": {"problems_total": len(all_ids), "problems_shown": len(chosen), "samples_total": total_samples,
                    "samples_shown": shown_samples, "max_problems": max_problems,
                    "max_samples_per_problem": max_samples_per_problem},
        "warnings": warnings,
    }


def _as_int(x: Any) -> int:
    try:
        return int(x)
    except (TypeError, ValueError):
        return -1


def _sample_json(k: int, rec: Mapping[str, Any], verdict: Mapping[str, Any] | None, max_chars: int) -> dict:
    parse_status = str(rec.get("parse_status") or "ok")
    logprob = rec.get("logprob")
    out = {
        "iteration": k, "index": _as_int(rec.get("index")), "status": _status(parse_status, verdict),
        "parse_status": parse_status, "rationale": _clip(rec.get("rationale"), max_chars),
        "code": _clip(rec.get("code"), max_chars),
        "logprob": logprob if isinstance(logprob, int | float) and math.isfinite(logprob) else None,
        "passed": _clean(verdict.get("passed"), max_chars) if verdict else None,
        "total": _clean(verdict.get("total"), max_chars) if verdict else None,
        "details": _clean(list(verdict.get("details") or ()), max_chars) if verdict else [],
    }
    # The raw completion only where parsing failed: otherwise it is the rationale and code again, twice the size.
    if parse_status != "ok":
        out["completion"] = _clip(rec.get("completion"), max_chars)
    return out


def _add_prompts(k: int, d: Path, problems: dict[str, dict[str, Any]], warnings: list[str],
                 max_chars: int) -> None:
    path = d / "prompts.jsonl.gz"
    if not path.is_file():
        return
    for rec in _records([path], warnings):
        eid = str(rec.get("example_id"))
        if eid in problems:
            problems[eid]["prompts"].append({"iterations": [k], "traced": bool(rec.get("traced")),
                                             "text": _clip(rec.get("prompt"), max_chars)})


def _merge_prompts(prompts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per distinct prompt text, listing the iterations that showed it (usually all of them)."""
    merged: dict[tuple[str, bool], dict[str, Any]] = {}
    for p in prompts:
        key = (p["text"], p["traced"])
        if key in merged:
            merged[key]["iterations"] += p["iterations"]
        else:
            merged[key] = dict(p)
    return list(merged.values())


# ----------------------------------------------------------------------------------------------------------
# The page


def script_json(data: Any) -> str:
    """JSON safe inside a <script> element: no '<', '>' or '&' survive, so nothing can close or comment the tag.

    ensure_ascii also turns lone surrogates (possible in decoded model output) into escapes, so writing UTF-8
    cannot fail.
    """
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _table_html(table: SummaryTable) -> str:
    esc = html.escape
    groups: list[tuple[str, int]] = []
    for c in table.columns:
        if groups and groups[-1][0] == c.group:
            groups[-1] = (c.group, groups[-1][1] + 1)
        else:
            groups.append((c.group, 1))
    head1 = "".join(f'<th colspan="{n}">{esc(g)}</th>' for g, n in groups)
    head2 = "".join(f"<th>{esc(c.name)}</th>" for c in table.columns)
    body = []
    for r, row in enumerate(table.rows):
        cls = ' class="best"' if r == table.best_row else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>")
    return (f'<table id="summary-table"><thead><tr>{head1}</tr><tr>{head2}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def _counts_html(data: Mapping[str, Any]) -> str:
    counts: Mapping[str, Mapping[str, int]] = data["status_counts"]
    statuses = sorted({s for c in counts.values() for s in c}, key=lambda s: (s != "pass", s))
    if not counts:
        return "<p>No samples yet.</p>"
    esc = html.escape
    head = "<th>iteration</th><th>samples</th>" + "".join(f"<th>{esc(s)}</th>" for s in statuses)
    rows = "".join(f"<tr><td>{esc(k)}</td><td>{sum(c.values())}</td>"
                   + "".join(f"<td>{c.get(s, 0)}</td>" for s in statuses) + "</tr>" for k, c in counts.items())
    return f'<table id="status-counts"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def render_page(summary: Mapping[str, Any], data: Mapping[str, Any], *, figure_png: bytes | None = None,
                run_name: str = "") -> str:
    """The whole HTML page as a string."""
    esc = html.escape
    title = f"NExT self-training: {summary.get('config_name', run_name or 'run')}"
    best = summary.get("best_iteration")
    meta = (f"run {esc(run_name)} · config {esc(str(summary.get('config_name', '?')))} · "
            f"seed {esc(str(summary.get('seed', '?')))} · best iteration {esc(str(best) if best is not None else '-')}")
    figure = (f'<img id="fix-rate" alt="dev fix rate per iteration" src="data:image/png;base64,'
              f'{base64.b64encode(figure_png).decode("ascii")}">' if figure_png else "")
    om = data["omitted"]
    left_problems = om["problems_total"] - om["problems_shown"]
    left_samples = om["samples_total"] - om["samples_shown"]
    omitted = (f"Showing {om['samples_shown']} of {om['samples_total']} samples from {om['problems_shown']} of "
               f"{om['problems_total']} problems ({left_problems} problems and {left_samples} samples left out; "
               f"at most {om['max_problems']} problems, chosen by a fixed hash of their id, and "
               f"{om['max_samples_per_problem']} samples per problem and iteration, statuses taken in turn).")
    warnings = "".join(f"<li>{esc(w)}</li>" for w in data["warnings"])
    return _PAGE.format(
        title=esc(title), meta=meta, css=_CSS, js=_JS, table=_table_html(summary_table(summary)), figure=figure,
        counts=_counts_html(data), omitted=esc(omitted), data=script_json(data),
        warnings=f'<ul class="warnings">{warnings}</ul>' if warnings else "")


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style></head>
<body>
<h1>{title}</h1>
<p class="meta">{meta}</p>
{warnings}
<h2>Summary</h2>
<p class="note">Greedy fix rate on dev in %, &plusmn; standard error; pass@k of the traced prompts;
* and the highlighted row mark the best iteration.</p>
{table}
{figure}
<h2>Samples per iteration</h2>
{counts}
<h2>Samples</h2>
<p class="note">{omitted}</p>
<div id="filters">
<label>status <select id="filter-status"></select></label>
<label>iteration <select id="filter-iteration"></select></label>
<label>problem <input id="filter-problem" type="search" placeholder="id contains"></label>
<span><b id="shown-count">0</b> samples shown</span>
</div>
<div id="problems"></div>
<script type="application/json" id="run-data">{data}</script>
<script>{js}</script>
</body></html>
"""

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { margin-top: 1.5em; border-bottom: 1px solid #ddd; }
.meta, .note { color: #555; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; text-align: center; } td:first-child { text-align: left; font-weight: 600; }
tr.best td { background: #fff6d5; }
#fix-rate { display: block; max-width: 100%; margin: 1em 0; }
.warnings { color: #a40000; }
#filters { position: sticky; top: 0; background: #fff; padding: 0.5em 0; border-bottom: 1px solid #ddd;
  display: flex; gap: 1.5em; align-items: center; z-index: 1; }
.problem { border: 1px solid #ccc; border-radius: 6px; margin: 1em 0; padding: 0.5em 1em; }
.problem > h3 { margin: 0.2em 0; font-family: ui-monospace, monospace; font-size: 1em; }
.sample { border-left: 4px solid #999; margin: 0.7em 0; padding: 0.2em 0.8em; background: #fafafa; }
.sample[data-status="pass"] { border-left-color: #2e7d32; }
.sample[data-status="fail"] { border-left-color: #c62828; }
.head { color: #444; } .badge { font-weight: 700; padding: 0 6px; border-radius: 4px; background: #e0e0e0; }
.badge.pass { background: #c8e6c9; } .badge.fail { background: #ffcdd2; }
pre { white-space: pre-wrap; word-break: break-word; background: #fff; border: 1px solid #e4e4e4;
  padding: 0.5em; margin: 0.3em 0; font: 12.5px/1.4 ui-monospace, monospace; max-height: 30em; overflow: auto; }
.label { font-weight: 600; margin-top: 0.4em; } summary { cursor: pointer; color: #0645ad; }
"""

# Every string from the data reaches the DOM through textContent (el()); nothing is parsed as HTML.
_JS = r"""
"use strict";
const DATA = JSON.parse(document.getElementById("run-data").textContent);
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function option(select, value, label) { const o = el("option", null, label); o.value = value; select.appendChild(o); }
function collapsible(label, text) {
  const d = el("details"); d.appendChild(el("summary", null, label)); d.appendChild(el("pre", null, text)); return d;
}
function sampleCard(s) {
  const card = el("div", "sample");
  card.dataset.status = s.status; card.dataset.iteration = String(s.iteration);
  const head = el("div", "head");
  head.appendChild(el("span", "badge " + s.status, s.status));
  let info = " iteration " + s.iteration + " \u00b7 sample " + s.index;
  if (s.total !== null && s.total !== undefined) info += " \u00b7 " + s.passed + "/" + s.total + " tests";
  if (s.parse_status !== "ok") info += " \u00b7 parse: " + s.parse_status;
  if (s.logprob !== null) info += " \u00b7 log-prob " + Number(s.logprob).toFixed(2);
  head.appendChild(el("span", null, info));
  card.appendChild(head);
  card.appendChild(el("div", "label", "Rationale"));
  card.appendChild(el("pre", "rationale", s.rationale || "(none)"));
  card.appendChild(el("div", "label", "Fixed code"));
  card.appendChild(el("pre", "code", s.code || "(none)"));
  if (s.details && s.details.length)
    card.appendChild(collapsible("verdict details (" + s.details.length + ")", JSON.stringify(s.details, null, 2)));
  if (s.completion !== undefined) card.appendChild(collapsible("raw completion", s.completion));
  return card;
}
function build() {
  const root = document.getElementById("problems");
  for (const p of DATA.problems) {
    const box = el("div", "problem"); box.dataset.id = p.id;
    box.appendChild(el("h3", null, p.id));
    for (const pr of p.prompts)
      box.appendChild(collapsible("prompt" + (pr.traced ? " (with trace)" : " (no trace)") + ", iteration " +
                                  pr.iterations.join(", "), pr.text));
    for (const s of p.samples) box.appendChild(sampleCard(s));
    root.appendChild(box);
  }
  const statuses = new Set();
  for (const p of DATA.problems) for (const s of p.samples) statuses.add(s.status);
  const fs = document.getElementById("filter-status");
  option(fs, "all", "all"); option(fs, "pass", "passed only"); option(fs, "not-pass", "failed only (not pass)");
  for (const st of [...statuses].filter(x => x !== "pass").sort()) option(fs, st, st);
  const fi = document.getElementById("filter-iteration");
  option(fi, "all", "all");
  for (const k of DATA.iterations) option(fi, String(k), String(k));
}
function applyFilters() {
  const st = document.getElementById("filter-status").value;
  const it = document.getElementById("filter-iteration").value;
  const q = document.getElementById("filter-problem").value.trim();
  let shown = 0;
  for (const box of document.querySelectorAll(".problem")) {
    const idOk = !q || box.dataset.id.includes(q);
    let any = false;
    for (const card of box.querySelectorAll(".sample")) {
      const s = card.dataset.status;
      const ok = idOk && (it === "all" || card.dataset.iteration === it) &&
                 (st === "all" || (st === "not-pass" ? s !== "pass" : s === st));
      card.hidden = !ok;
      if (ok) { shown++; any = true; }
    }
    box.hidden = !any && (st !== "all" || it !== "all" || !idOk);
  }
  document.getElementById("shown-count").textContent = String(shown);
}
function setSelect(id, value) {
  const s = document.getElementById(id);
  if (value !== null && [...s.options].some(o => o.value === value)) s.value = value;
}
function readHash() {
  const h = new URLSearchParams(location.hash.replace(/^#/, ""));
  setSelect("filter-status", h.get("status")); setSelect("filter-iteration", h.get("iteration"));
  document.getElementById("filter-problem").value = h.get("problem") || "";
  applyFilters();
}
function writeHash() {
  const h = new URLSearchParams();
  h.set("status", document.getElementById("filter-status").value);
  h.set("iteration", document.getElementById("filter-iteration").value);
  const q = document.getElementById("filter-problem").value.trim();
  if (q) h.set("problem", q);
  try { history.replaceState(null, "", "#" + h.toString()); } catch (e) { /* file: URLs may refuse */ }
}
build();
for (const id of ["filter-status", "filter-iteration", "filter-problem"])
  document.getElementById(id).addEventListener("input", () => { applyFilters(); writeHash(); });
window.addEventListener("hashchange", readHash);
readHash();
"""
