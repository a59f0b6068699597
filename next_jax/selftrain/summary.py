"""`RUN/summary.json` from the completed stages, and publishing it: summary, TensorBoard scalars, the
fix-rate plot, the HTML report and, at the end, the printed table (process 0 only)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import jax

from next_jax.selftrain.rundir import RunDir, atomic_write_bytes, atomic_write_json
from next_jax.selftrain.sample_verify import read_joined

log = logging.getLogger(__name__)
_TRAIN_KEYS = ("problems", "samples", "parsed", "passed", "problems_solved")


def _eval(run: RunDir, name: str) -> dict[str, Any]:
    return run.result(f"{name}/eval")["eval"] if run.done(f"{name}/eval") else {}


def paired_difference(model: Mapping[str, bool], reference: Mapping[str, bool]) -> dict[str, Any] | None:
    """Mean of `model - reference` over the problems both answered (pass = 1), with its standard error: the
    two fix rates' difference, measured on the same problems, so the problems' own difficulty cancels."""
    common = sorted(model.keys() & reference.keys())
    if len(common) < 2:
        return None
    diffs = [int(model[e]) - int(reference[e]) for e in common]
    mean = sum(diffs) / len(diffs)
    var = sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)
    return {"problems": len(common), "greedy_fix_rate": mean, "stderr": math.sqrt(var / len(diffs))}


def _greedy_passes(run: RunDir, name: str) -> dict[str, bool]:
    directory = run.path(name, "eval", "dev", "greedy")
    if not (directory / "samples").is_dir():
        return {}
    return {sample.example_id: verdict["status"] == "pass" for sample, verdict in read_joined(directory)}


def build_summary(run: RunDir, *, seed: int, num_iterations: int) -> dict[str, Any]:
    base, control = _eval(run, "base"), _eval(run, "control")
    summary: dict[str, Any] = {
        "seed": seed,
        "config_name": run.name,
        "base": base.get("dev"), "base_notrace": base.get("dev_notrace"),
        "control": control.get("dev"), "control_notrace": control.get("dev_notrace"),
        "dev_floor": ({k: v for k, v in run.result("dev_floor").items() if k != "seconds"}
                      if run.done("dev_floor") else None),
        "extra_evals": {"base": {k: v for k, v in base.items() if not k.startswith("dev")},
                        "control": {k: v for k, v in control.items() if not k.startswith("dev")}},
        "iterations": [],
        "stage_seconds": {s: (run.result(s) or {}).get("seconds") for s in run.completed
                          if isinstance(run.result(s), dict)},
    }
    control_passes = _greedy_passes(run, "control")
    for k in range(num_iterations):
        name = f"iter_{k}"
        if not run.done(f"{name}/eval"):
            break
        ev, sample = _eval(run, name), run.result(f"{name}/sample")
        summary["iterations"].append({
            "iteration": k,
            "dev": ev.get("dev"),
            "dev_notrace": ev.get("dev_notrace"),
            "extra_evals": {a: v for a, v in ev.items() if not a.startswith("dev")},
            "train": {**{key: sample[key] for key in _TRAIN_KEYS}, "kept": run.result(f"{name}/filter")["kept"]},
            "seconds": {"sample": sample["sample_seconds"], "verify": sample["verify_seconds"],
                        "sample_and_verify": sample["seconds"], "filter": run.result(f"{name}/filter")["seconds"],
                        "train": run.result(f"{name}/train")["seconds"], "eval": run.result(f"{name}/eval")["seconds"]},
            "sampler_wait_seconds": sample["sampler_wait_seconds"],
            "trace_share": sample["trace_share"],
            # dev greedy, this iteration minus the control, paired by problem (None without a control)
            "minus_control": paired_difference(_greedy_passes(run, name), control_passes),
        })
    summary["best_iteration"] = best_iteration(summary)
    return summary


def best_iteration(summary: dict[str, Any]) -> int | None:
    """The iteration with the highest dev greedy fix rate (the earliest on ties)."""
    scored = [(it["dev"]["greedy_fix_rate"], -it["iteration"]) for it in summary["iterations"] if it.get("dev")]
    return -max(scored)[1] if scored else None


def _scalars(summary: dict[str, Any]) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    for it in summary["iterations"]:
        row = out.setdefault(it["iteration"], {})
        for arm in ("dev", "dev_notrace"):
            if it.get(arm):
                row[f"{arm}/greedy_fix_rate"] = it[arm]["greedy_fix_rate"]
                row.update({f"{arm}/pass@{k}": v for k, v in it[arm]["pass_at_k"].items()})
        row.update({f"train/{k}": v for k, v in it["train"].items()})
        row.update({f"seconds/{k}": v for k, v in it["seconds"].items()})
        row["sampler_wait_seconds"] = it["sampler_wait_seconds"]
    return out


def publish(run: RunDir, summary: dict[str, Any], *, final: bool) -> None:
    """Write the summary and what is derived from it (process 0 only)."""
    if jax.process_index() != 0:
        return
    atomic_write_json(run.path("summary.json"), summary)
    from next_jax.train.metric_writers import TensorBoardWriter

    writer = TensorBoardWriter(str(run.path("tensorboard", "loop")))
    for step, scalars in _scalars(summary).items():
        writer.write_scalars(step, scalars)
    writer.close()
    try:
        from next_jax.selftrain import plots, report

        png = plots.fix_rate_png(summary)  # drawn once: written to fix_rate.png and embedded in the report
        atomic_write_bytes(run.path("fix_rate.png"), png)
        report.write_report(run.root, figure_png=png, run_name=run.name)
    except Exception as e:  # noqa: BLE001 - a figure or page must never fail a finished run
        log.warning("could not write the plot/report: %s: %s", type(e).__name__, e)
    if final:
        try:
            from next_jax.selftrain.summary_table import format_summary_table

            print(format_summary_table(summary), flush=True)
        except Exception as e:  # noqa: BLE001
            log.warning("could not print the summary table: %s", e)
