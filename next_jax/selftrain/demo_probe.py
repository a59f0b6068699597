"""A diagnostic beside the loop: fine-tune a finished run's base on chosen demonstration sets, then evaluate it.

It answers "what is self-training's data worth?" with the loop's own fine-tune and evaluation, nothing else
changed: the base fine-tuned on the gold demonstrations of the pool problems (the synthetic generator's
rationale and reference fix) is the most an iteration could gain from those problems; gold restricted to the
problems iteration 0 solved separates coverage from quality; the iteration's own passing samples, refiltered
with the gin `FilterSettings`, is what the loop trains on. The probe works in a new run directory forked from
the source (data, base, reference times and, where present, iteration 0's samples and verdicts), so the source
run is never written to.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from next_jax.data.example import write_jsonl
from next_jax.selftrain.batches import count_records
from next_jax.selftrain.loop import Loop
from next_jax.selftrain.rundir import RunDir
from next_jax.selftrain.sample_verify import read_joined

# name -> what it adds to the fine-tune's records
DEMO_SETS = {
    "seed": "the seed demonstrations (what the control trains on)",
    "pool_gold": "gold rationale (where the problem set has one: synthetic) + reference fix of every pool problem",
    "pool_gold_solved": "gold of the pool problems with a passing sample in the source's iteration 0",
    "iter0_kept": "the source's iteration-0 passing samples, filtered with the gin FilterSettings",
}
_FORKED_STAGES = ("data", "time_limits", "base")


def fork(source: Path, target: Path) -> None:
    """Copy what the probe reads from `source` into a new run directory `target` (refused if it exists)."""
    done = json.loads((source / "state.json").read_text())["completed"]
    if "base" not in done:
        raise ValueError(f"{source}: its base stage is not complete")
    target.mkdir(parents=True)
    for name in ("data", "base", "config.gin"):
        src = source / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, target / name)
    if "iter_0/sample" in done:
        (target / "iter_0").mkdir()
        for name in ("samples", "verdicts", "prompts.jsonl.gz"):
            src = source / "iter_0" / name
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, target / "iter_0" / name)
    state = {"completed": {k: v for k, v in done.items() if k in _FORKED_STAGES or k == "iter_0/sample"}}
    (target / "state.json").write_text(json.dumps(state, indent=2))


def _need_iteration0(loop: Loop) -> None:
    if not loop.run.done("iter_0/sample"):
        raise ValueError("this demo set needs the source run's iteration-0 samples (its iter_0/sample stage)")


def check_demos(demos: Sequence[str]) -> None:
    unknown = [d for d in demos if d not in DEMO_SETS]
    if unknown or not demos:
        raise ValueError(f"unknown demo sets {unknown}; choose from {sorted(DEMO_SETS)}")


def demo_paths(loop: Loop, demos: Sequence[str]) -> list[Path]:
    """Training record files for `demos` (keys of `DEMO_SETS`), written into the probe's run directory."""
    check_demos(demos)
    paths = []
    for name in demos:
        if name == "seed":
            paths.append(loop.write_demos(loop.problems.seed, "seed"))
        elif name == "pool_gold":
            paths.append(loop.write_demos(loop.problems.pool, "pool_gold"))
        elif name == "pool_gold_solved":
            _need_iteration0(loop)
            solved = {s.example_id for s, v in read_joined(loop.run.iteration(0)) if v["status"] == "pass"}
            paths.append(loop.write_demos([ex for ex in loop.problems.pool if ex.id in solved], "pool_gold_solved"))
        else:  # iter0_kept: as the loop's filter stage builds it
            _need_iteration0(loop)
            path = loop.run.path("data", "iter0_kept.jsonl")
            write_jsonl(path, loop.kept(range(1)))
            paths.append(path)
    return paths


def demo_probe(source: str | Path, run_dir: str | Path, *, name: str, demos: Sequence[str], seed: int,
               trace_format: str, pool_factory: Callable[[], Any], show_progress: bool = False) -> dict[str, Any]:
    """Fork `source` into `run_dir` (unless done before: then resume there), fine-tune its base on `demos` with
    the gin `FinetuneSettings` (as iteration 0 would, same data-order seed), evaluate with `EvalSettings`.
    Returns `{"records": N, "train": stage result, "eval": EVAL per arm}`."""
    check_demos(demos)
    source, run_dir = Path(source), Path(run_dir)
    if not (run_dir / "state.json").exists():
        fork(source, run_dir)
    loop = Loop(RunDir(str(run_dir)), seed=seed, trace_format=trace_format, problems_factory=None,
                pool_factory=pool_factory, show_progress=show_progress)
    try:
        loop.measure_time_limits()
        paths = demo_paths(loop, demos)
        records = count_records(paths)
        train = loop.timed(name, lambda: loop.finetune_stage(name, loop.params("base"), paths, 200))
        return {"records": records, "train": train, "eval": loop.evaluate(name, 0)}
    finally:
        loop.close()
