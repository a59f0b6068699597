"""The README's main job at smoke size, end to end through the real sandboxed pool: outputs, resume after
`kill -9` at several points, and clear errors for bad input."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SMOKE = "gin/experiments/tiny_cpu_smoke.gin"
# Checkpoints every 2 steps, so a run killed mid-training resumes from a checkpoint.
BINDINGS = ("--gin.Trainer.save_every=2",)


def launch(run_dir: Path | str, *extra: str, crash_at: str | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("NEXT_JAX_SELFTRAIN_CRASH_AT", None)
    if crash_at:
        env["NEXT_JAX_SELFTRAIN_CRASH_AT"] = crash_at
    cmd = [sys.executable, "launch/self_train.py", f"--gin_file={SMOKE}", f"--run_dir={run_dir}", *BINDINGS, *extra]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def without_timings(obj):
    """A summary with every timing (and the run's own name) removed, for comparing runs."""
    if isinstance(obj, dict):
        return {k: without_timings(v) for k, v in obj.items()
                if "seconds" not in k and k not in ("config_name",)}
    if isinstance(obj, list):
        return [without_timings(v) for v in obj]
    return obj


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    result = launch(run_dir)
    assert result.returncode == 0, result.stderr[-4000:]
    return run_dir, result


def test_a_run_writes_every_output(finished):
    run_dir, result = finished
    s = summary(run_dir)
    for key in ("base", "base_notrace", "control", "control_notrace"):
        ev = s[key]
        assert ev["problems"] == 16 and 0.0 <= ev["greedy_fix_rate"] <= 1.0
        assert set(ev["pass_at_k"]) == {"1", "2"}
    (it,) = s["iterations"]
    assert it["iteration"] == 0 and set(it["seconds"]) >= {"sample", "verify", "train", "eval"}
    train = it["train"]
    assert train["problems"] == 32 and train["samples"] == 64
    assert train["passed"] <= train["parsed"] <= train["samples"] and train["kept"] <= train["passed"]
    assert it["trace_share"] >= 0.95 and it["sampler_wait_seconds"] >= 0.0
    paired = it["minus_control"]  # the same 16 dev problems: the paired mean is the rates' difference
    assert paired["problems"] == 16 and paired["stderr"] >= 0.0
    assert abs(paired["greedy_fix_rate"] - (it["dev"]["greedy_fix_rate"] - s["control"]["greedy_fix_rate"])) < 1e-9
    assert s["best_iteration"] == 0
    samples = [json.loads(line) for f in sorted((run_dir / "iter_0" / "samples").glob("*.gz"))
               for line in gzip.open(f, "rt")]
    assert sorted((r["example_id"], r["index"]) for r in samples) == sorted({(r["example_id"], r["index"]) for r in samples})
    assert len(samples) == 64
    for path in ("state.json", "config.gin", "iter_0/kept.jsonl", "report.html", "fix_rate.png",
                 "best/hf/config.json", "best/params", "iter_0/params", "tensorboard/loop"):
        assert (run_dir / path).exists(), path
    assert "best iteration" in result.stdout  # the summary table printed at the end
    assert "fix rate" in result.stdout


def test_the_same_command_on_a_finished_run_changes_nothing(finished):
    run_dir, _ = finished
    before = summary(run_dir)
    again = launch(run_dir)
    assert again.returncode == 0, again.stderr[-3000:]
    assert without_timings(summary(run_dir)) == without_timings(before)


def test_a_different_config_is_refused(finished):
    run_dir, _ = finished
    result = launch(run_dir, "--gin.FinetuneSettings.steps=5")
    assert result.returncode == 2 and "ALLOW_CONFIG_CHANGE" in result.stderr


def test_bad_input_gets_a_clear_error(tmp_path):
    typo = launch(tmp_path / "a", "--gin.FinetuneSetings.steps=5")
    assert typo.returncode == 2 and "bad gin configuration" in typo.stderr and "FinetuneSetings" in typo.stderr
    missing = launch(tmp_path / "b", "--gin_file=gin/experiments/no_such.gin")
    assert missing.returncode == 2 and "no_such.gin" in missing.stderr
    if importlib.util.find_spec("gcsfs") is None:  # without the gcs extra, gs:// names it
        gs = launch("gs://no-such-bucket/run", f"--local_cache_dir={tmp_path / 'cache'}")
        assert gs.returncode == 2 and "pip install -e '.[gcs]'" in gs.stderr, gs.stderr[-2000:]


CRASH_POINTS = (
    "stage:base",                                      # between stages
    "samples:iter_0:shard-p000-00000.jsonl.gz",        # during sampling
    "verdicts:iter_0:shard-p000-00001.jsonl.gz",       # during verification
    "train:iter_0:3",                                  # during fine-tuning (checkpoint at step 2)
    "stage:iter_0/train",                              # between stages
    "verdicts:greedy:shard-p000-00000.jsonl.gz",       # during evaluation
)


def test_kill_minus_nine_anywhere_then_resume_gives_the_same_run(finished, tmp_path):
    reference, _ = finished
    run_dir = tmp_path / "resumed"
    for point in CRASH_POINTS:
        crashed = launch(run_dir, crash_at=point)
        assert crashed.returncode == -9, (point, crashed.returncode, crashed.stderr[-3000:])
    final = launch(run_dir)
    assert final.returncode == 0, final.stderr[-4000:]
    assert (run_dir / "iter_0" / "kept.jsonl").read_bytes() == (reference / "iter_0" / "kept.jsonl").read_bytes()
    assert without_timings(summary(run_dir)) == without_timings(summary(reference))
    keys = [(json.loads(line)["example_id"], json.loads(line)["index"])
            for f in sorted((run_dir / "iter_0" / "verdicts").glob("*.gz")) for line in gzip.open(f, "rt")]
    assert len(keys) == len(set(keys)) == 64


def remote_files(root: Path) -> dict[str, int]:
    """Relative path -> mtime_ns of every file under `root`."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_a_url_run_directory_resumes_from_the_remote_alone(finished, tmp_path):
    """`--run_dir=file://...` (a URL: the run works in a local cache mirrored to it). Killed mid-evaluation,
    then rerun on an empty cache, it resumes from what the remote holds and gives the local run; on a third
    empty cache it refuses another config and finishes at once with the same config."""
    reference, _ = finished
    remote = tmp_path / "remote"
    url = f"file://{remote}"
    first_shard = "base/eval/dev/greedy/samples/shard-p000-00000.jsonl.gz"
    crashed = launch(url, f"--local_cache_dir={tmp_path / 'cache1'}",
                     crash_at="verdicts:greedy:shard-p000-00000.jsonl.gz")  # base's evaluation
    assert crashed.returncode == -9, crashed.stderr[-3000:]
    done = json.loads((remote / "state.json").read_text())["completed"]
    assert "base" in done and "base/eval" not in done
    assert (remote / "base/params/_CHECKPOINT_METADATA").exists()  # pushed with its stage
    assert (remote / first_shard).exists()  # pushed as soon as it was written
    pushed_at = (remote / first_shard).stat().st_mtime_ns

    resumed = launch(url, f"--local_cache_dir={tmp_path / 'cache2'}")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    cache = tmp_path / "cache2"
    for rel in ("state.json", "summary.json", "iter_0/kept.jsonl", "config.gin"):
        assert (remote / rel).read_bytes() == (cache / rel).read_bytes(), rel
    assert (remote / "iter_0/kept.jsonl").read_bytes() == (reference / "iter_0/kept.jsonl").read_bytes()
    assert without_timings(summary(remote)) == without_timings(summary(reference))
    assert (remote / first_shard).stat().st_mtime_ns == pushed_at  # reused from the remote, not sampled again
    files = remote_files(remote)
    assert not [f for f in files if f.endswith(".tmp") or "orbax-checkpoint-tmp" in f or "partial" in f]

    other = launch(url, f"--local_cache_dir={tmp_path / 'cache3'}", "--gin.FinetuneSettings.steps=5")
    assert other.returncode == 2 and "ALLOW_CONFIG_CHANGE" in other.stderr and url in other.stderr
    again = launch(url, f"--local_cache_dir={tmp_path / 'cache3'}")
    assert again.returncode == 0, again.stderr[-3000:]
    # Nothing ran again: the stage record and the summary (timings included) are byte for byte the same.
    assert (remote / "state.json").read_bytes() == (cache / "state.json").read_bytes()
    assert (remote / "summary.json").read_bytes() == (cache / "summary.json").read_bytes()


def test_demo_probe_reproduces_iteration_0_and_only_reads_its_source(finished, tmp_path):
    """`launch/demo_probe.py` with the source's own config and its iteration-0 records (kept samples, then the
    seed set, as the loop orders them) trains and evaluates exactly what the loop did; the source is untouched."""
    run_dir, _ = finished
    before = remote_files(run_dir)
    out = tmp_path / "probe"
    cmd = [sys.executable, "launch/demo_probe.py", f"--source={run_dir}", f"--run_dir={out}", "--demos=iter0_kept,seed"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    printed = json.loads(result.stdout[result.stdout.index("{"):])
    loop_eval = json.loads((run_dir / "state.json").read_text())["completed"]["iter_0/eval"]["eval"]
    assert without_timings(printed["eval"]) == without_timings(loop_eval)
    assert (out / "data" / "iter0_kept.jsonl").read_bytes() == (run_dir / "iter_0" / "kept.jsonl").read_bytes()
    seed = (out / "data" / "seed_inline.jsonl").read_text().splitlines()
    kept = (run_dir / "iter_0" / "kept.jsonl").read_text().splitlines()
    assert printed["records"] == len(seed) + len(kept)
    assert remote_files(run_dir) == before

    unknown = subprocess.run([*cmd[:3], f"--run_dir={tmp_path / 'other'}", "--demos=seed,gold_everything"],
                             cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert unknown.returncode == 2 and "gold_everything" in unknown.stderr and "pool_gold" in unknown.stderr
