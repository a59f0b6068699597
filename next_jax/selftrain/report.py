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
import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from next_jax.selftrain.report_data import collect_samples
from next_jax.selftrain.summary_table import SummaryTable, summary_table


def write_report(run_dir: str | Path, out: str | Path | None = None, *, max_problems: int = 200,
                 max_samples_per_problem: int = 8, max_chars: int = 20_000,
                 figure_png: bytes | None = None, run_name: str | None = None) -> Path:
    """Write the run's report (default RUN/report.html) and return its path.

    At most `max_problems` problems (a fixed hash-ordered choice, so reruns show the same ones) and, per problem
    and iteration, `max_samples_per_problem` samples (statuses taken in turn so passes and failures both show)
    go into the page; strings are cut at `max_chars`. The page says how much was left out. `figure_png`: the
    fix-rate figure when the caller has drawn it already (default: drawn here). `run_name` (default: the
    directory's name) heads the page.
    """
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "report.html"
    summary = _read_summary(run_dir)
    data = collect_samples(run_dir, max_problems=max_problems, max_samples_per_problem=max_samples_per_problem,
                           max_chars=max_chars)
    page = render_page(summary, data, figure_png=figure_png or _figure_png(summary), run_name=run_name or run_dir.resolve().name)
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
