"""The run's fix-rate figure: dev greedy fix rate per iteration, with base and control as reference lines."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Figure + the Agg canvas directly, not pyplot: no global figure state and no backend switch in the caller.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from next_jax.selftrain.summary_table import iterations


def _rate(ev: Any) -> tuple[float, float] | None:
    """(fix rate %, stderr %) of an EVAL, or None where it was not run."""
    if not isinstance(ev, Mapping) or not isinstance(ev.get("greedy_fix_rate"), int | float):
        return None
    err = ev.get("greedy_fix_rate_stderr")
    return 100 * float(ev["greedy_fix_rate"]), 100 * float(err) if isinstance(err, int | float) else 0.0


def fix_rate_figure(summary: Mapping[str, Any]) -> Figure:
    """Two error-bar lines (dev with and without traces) over iterations; base/control as horizontal lines."""
    fig = Figure(figsize=(9, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    its = [it for it in iterations(summary) if isinstance(it.get("iteration"), int)]
    # The no-trace line is nudged right so the two error bars at one iteration do not hide each other.
    for key, label, color, marker, dx in (("dev", "dev, traces", "tab:blue", "o", 0.0),
                                          ("dev_notrace", "dev, no traces", "tab:orange", "s", 0.04)):
        points = [(it["iteration"] + dx, r) for it in its if (r := _rate(it.get(key))) is not None]
        if points:
            ax.errorbar([x for x, _ in points], [r[0] for _, r in points], yerr=[r[1] for _, r in points],
                        label=label, color=color, marker=marker, capsize=3)
    for key, label, color in (("base", "base", "tab:gray"), ("control", "control", "tab:green")):
        for suffix, style, what in (("", "-", "traces"), ("_notrace", "--", "no traces")):
            if (r := _rate(summary.get(key + suffix))) is not None:
                ax.axhline(r[0], color=color, linestyle=style, linewidth=1.2, label=f"{label}, {what}")
    floor = summary.get("dev_floor")
    if floor and floor.get("fix_rate") is not None:
        ax.axhline(100 * floor["fix_rate"], color="black", linestyle=":", linewidth=1,
                   label="test-blind floor (random edit)")
    best = summary.get("best_iteration")
    if isinstance(best, int) and any(it["iteration"] == best for it in its):
        ax.axvline(best, color="tab:red", linestyle=":", linewidth=1, label=f"best (iter {best})")
    if its:
        ax.set_xticks(sorted({it["iteration"] for it in its}))
    ax.set_xlabel("self-training iteration")
    ax.set_ylabel("greedy fix rate (%)")
    ax.set_title(f"Dev fix rate: {summary.get('config_name', 'run')} (seed {summary.get('seed', '?')})")
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        order = sorted(range(len(labels)), key=lambda i: not labels[i].startswith("dev"))  # the run's own first
        # Outside the axes: reference lines span the whole width, so any spot inside would hide data.
        ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize="small", loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    else:
        ax.text(0.5, 0.5, "no evaluations yet", transform=ax.transAxes, ha="center", va="center")
    fig.tight_layout()
    return fig


def fix_rate_png(summary: Mapping[str, Any]) -> bytes:
    """The figure as PNG bytes (the report embeds these without touching the run directory)."""
    buf = io.BytesIO()
    fix_rate_figure(summary).savefig(buf, format="png")
    return buf.getvalue()


def plot_fix_rate(summary: Mapping[str, Any], out_path: str | Path) -> Path:
    """Write the fix-rate figure as a PNG (conventionally RUN/fix_rate.png) and return its path."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.write_bytes(fix_rate_png(summary))
    tmp.replace(out_path)  # readers never see a half-written image
    return out_path
