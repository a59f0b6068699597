"""The Cloud TPU launcher builds the right gcloud commands and, with --dry_run, runs none of them."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # launch/ is not an installed package
    sys.path.insert(0, str(REPO))

from launch.tpu import commands  # noqa: E402
from launch.tpu.run_job import execute, parse_args, wait_active  # noqa: E402
from launch.tpu.slices import parse_accelerator  # noqa: E402

CLI = REPO / "launch" / "tpu" / "run_job.py"
# Bindings a shell would mangle if the launcher quoted them wrongly: quotes, a space, $(...), ;, a glob.
TRICKY = ("HF_CHECKPOINT='/ckpt dir/qwen'", "NOTE='$(touch /tmp/pwned); *'", "SelfTrainSettings.iterations=3")
V5P = ["--project=my-proj", "--zone=us-east5-a", "--accelerator=v5p-8", "--spot",
       "--gin_file=gin/experiments/tiny_cpu.gin", "--run_dir=gs://bucket/runs/v5p"]
V5E = ["--project=my-proj", "--zone=us-west4-a", "--accelerator=v5e-256", "--name=nj-v5e", "--reserved",
       "--gin_file=gin/experiments/mbpp_r_qwen2p5_coder_7b.gin", "--run_dir=gs://bucket/runs/v5e",
       "--repo_url=https://example.com/next-jax.git", "--env=NEXT_JAX_DATA=/data"]
GIN = [f"--gin.{b}" for b in TRICKY]


@pytest.mark.parametrize("name, accelerator_type, generation, chips, workers, per_worker, runtime", [
    ("v5p-8", "v5p-8", "v5p", 4, 1, 4, "v2-alpha-tpuv5"),
    ("v5p-128", "v5p-128", "v5p", 64, 16, 4, "v2-alpha-tpuv5"),
    ("v5e-256", "v5litepod-256", "v5e", 256, 64, 4, "v2-alpha-tpuv5-lite"),
    ("v5litepod-8", "v5litepod-8", "v5e", 8, 1, 8, "v2-alpha-tpuv5-lite"),
    ("v5litepod-16", "v5litepod-16", "v5e", 16, 4, 4, "v2-alpha-tpuv5-lite"),
    ("v6e-16", "v6e-16", "v6e", 16, 4, 4, "v2-alpha-tpuv6e"),
    ("v4-32", "v4-32", "v4", 16, 4, 4, "tpu-ubuntu2204-base"),
])
def test_slice_shapes(name, accelerator_type, generation, chips, workers, per_worker, runtime):
    spec = parse_accelerator(name)
    assert (spec.accelerator_type, spec.generation, spec.chips, spec.workers, spec.chips_per_worker,
            spec.runtime_version) == (accelerator_type, generation, chips, workers, per_worker, runtime)


@pytest.mark.parametrize("name", ["v5p-7", "v9-8", "tpu", "v5litepod-18"])
def test_impossible_accelerators_are_refused(name):
    with pytest.raises(ValueError):
        parse_accelerator(name)


def _steps(argv: list[str], steps: str = "create,wait,install,start,logs,stop,delete") -> dict[str, list]:
    job, _ = parse_args([*argv, *GIN, f"--steps={steps}"])
    by_name: dict[str, list] = {}
    for step in commands.plan(job, tuple(steps.split(","))):
        by_name.setdefault(step.name, []).append(step.argv)
    return by_name


def _command_of(argv: list[str]) -> str:
    (flag,) = [a for a in argv if a.startswith("--command=")]
    return flag[len("--command="):]


def _assert_job_passed_verbatim(ssh: list[str], gin_file: str, run_dir: str) -> None:
    """The worker's shell, splitting the ssh command, must hand self_train.py exactly these arguments."""
    words = shlex.split(_command_of(ssh))
    start = words.index("launch/self_train.py")
    expected = [f"--gin_file={gin_file}", *GIN, f"--run_dir={run_dir}"]
    assert words[start + 1:start + 1 + len(expected)] == expected
    assert not any("coordinator" in w or "process_index" in w for w in words)  # TPU pods need no cluster flags


def test_v5p_8_commands():
    job, _ = parse_args([*V5P, *GIN])
    assert (job.slice.workers, job.slice.chips, job.runtime_version) == (1, 4, "v2-alpha-tpuv5")
    steps = _steps(V5P)
    create = steps["create"][1]
    assert create[:5] == ["gcloud", "compute", "tpus", "queued-resources", "create"]
    for flag in ("--node-id=next-jax-v5p-8", "--accelerator-type=v5p-8", "--runtime-version=v2-alpha-tpuv5",
                 "--zone=us-east5-a", "--project=my-proj", "--spot"):
        assert flag in create
    assert "--reserved" not in create
    assert steps["wait"] == [commands.describe_argv(job, "value(state.state)")]
    # local checkout: git archive -> scp to every worker -> unpack -> venv + pip install -e '.[tpu]'
    archive, scp, unpack, pip = steps["install"]
    assert archive[:4] == ["git", "-C", str(REPO), "archive"] and archive[-1] == "HEAD"
    assert scp[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "scp"] and "--worker=all" in scp
    assert "--worker=all" in unpack and "--worker=all" in pip
    assert shlex.split(_command_of(pip))[-4:] == ["install", "-q", "-e", ".[tpu]"]
    (start,) = steps["start"]
    assert start[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "next-jax-v5p-8"]
    assert "--worker=all" in start and "--zone=us-east5-a" in start
    _assert_job_passed_verbatim(start, "gin/experiments/tiny_cpu.gin", "gs://bucket/runs/v5p")
    assert "--worker=0" in steps["logs"][0]
    assert steps["delete"][0][:6] == ["gcloud", "compute", "tpus", "queued-resources", "delete", "next-jax-v5p-8"]
    assert "--force" in steps["delete"][0] and "--quiet" in steps["delete"][0]


def test_v5e_256_commands():
    job, _ = parse_args([*V5E, *GIN])
    assert job.slice.accelerator_type == "v5litepod-256"
    assert (job.slice.workers, job.slice.chips_per_worker) == (64, 4)
    steps = _steps(V5E)
    create = steps["create"][1]
    for flag in ("--node-id=nj-v5e", "--accelerator-type=v5litepod-256", "--runtime-version=v2-alpha-tpuv5-lite",
                 "--zone=us-west4-a", "--reserved"):
        assert flag in create
    clone, _pip = steps["install"]
    assert "git clone -q https://example.com/next-jax.git next-jax" in _command_of(clone)
    (start,) = steps["start"]
    assert "--worker=all" in start and "--zone=us-west4-a" in start
    _assert_job_passed_verbatim(start, "gin/experiments/mbpp_r_qwen2p5_coder_7b.gin", "gs://bucket/runs/v5e")
    assert "env NEXT_JAX_DATA=/data .venv/bin/python launch/self_train.py" in _command_of(start)


def test_runtime_version_and_capacity_can_be_overridden():
    job, _ = parse_args([*V5P, "--runtime_version=v2-alpha-tpuv5-custom", "--create_flag=--network=my-net"])
    create = commands.create_argv(job)
    assert "--runtime-version=v2-alpha-tpuv5-custom" in create and create[-1] == "--network=my-net"


def _fake_tools(tmp_path: Path, gcloud_body: str) -> tuple[dict, Path]:
    """A PATH holding only a recording `gcloud` and `git`, so nothing real can run."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.txt"
    bin_dir.mkdir()
    for tool, body in (("gcloud", gcloud_body), ("git", "exit 0")):
        script = bin_dir / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> {calls}\n{body}\n')
        script.chmod(0o755)
    return {"PATH": str(bin_dir), "HOME": str(tmp_path)}, calls


def _cli(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CLI), *args], capture_output=True, text=True, env=env, timeout=60,
                          cwd=REPO)


@pytest.mark.parametrize("argv, expected", [
    (V5P, ["--accelerator-type=v5p-8", "--runtime-version=v2-alpha-tpuv5", "--zone=us-east5-a", "1 worker x 4"]),
    (V5E, ["--accelerator-type=v5litepod-256", "--runtime-version=v2-alpha-tpuv5-lite", "--zone=us-west4-a",
           "64 workers x 4"]),
])
def test_dry_run_prints_every_command_and_runs_none(tmp_path, argv, expected):
    env, calls = _fake_tools(tmp_path, "exit 0")
    done = _cli([*argv, *GIN, "--steps=create,wait,install,start,logs,delete", "--dry_run"], env)
    assert done.returncode == 0, done.stderr
    assert not calls.exists()  # neither gcloud nor git was called
    for text in expected:
        assert text in done.stdout
    lines = [line for line in done.stdout.splitlines() if not line.startswith("#")]
    assert any(line.startswith("gcloud compute tpus queued-resources create ") for line in lines)
    assert any(line.startswith("gcloud compute tpus queued-resources delete ") for line in lines)
    (start,) = [shlex.split(line) for line in lines if "launch/self_train.py" in line]
    flags = dict(a.split("=", 1) for a in argv if "=" in a)
    _assert_job_passed_verbatim(start, flags["--gin_file"], flags["--run_dir"])


def test_a_failing_command_stops_the_launch(tmp_path):
    env, calls = _fake_tools(tmp_path, "exit 3")
    done = _cli([*V5E, "--steps=install,start"], env)
    assert done.returncode == 3
    assert len(calls.read_text().splitlines()) == 1  # the clone failed; start never ran
    assert "step 'install' failed with exit status 3" in done.stderr and "not run: the rest of install, start" in done.stderr


def test_an_existing_slice_is_reused_and_waited_for(tmp_path):
    env, calls = _fake_tools(tmp_path, "echo ACTIVE")
    done = _cli([*V5P, "--steps=create,wait"], env)
    assert done.returncode == 0, done.stderr
    recorded = calls.read_text().splitlines()
    assert [c.split()[4] for c in recorded] == ["describe", "describe"]  # no create: the slice was there
    assert "reusing it" in done.stdout and "state: ACTIVE" in done.stdout


def test_wait_follows_the_state_until_active_or_dead():
    def fake(states):
        seq = iter(states)
        return lambda argv, **kw: SimpleNamespace(returncode=0, stdout=next(seq) + "\n", stderr="")

    assert wait_active(["x"], 60, 0, run=fake(["WAITING_FOR_RESOURCES", "PROVISIONING", "ACTIVE"]),
                       sleep=lambda s: None) == 0
    assert wait_active(["x"], 60, 0, run=fake(["PROVISIONING", "FAILED"]), sleep=lambda s: None) == 1
    assert wait_active(["x"], 0, 0, run=fake(["WAITING_FOR_RESOURCES"]), sleep=lambda s: None) == 1


def test_missing_gcloud_is_reported(tmp_path, capsys):
    job, _ = parse_args(V5P)
    steps = commands.plan(job, ("delete",))
    with_empty_path = {**os.environ, "PATH": str(tmp_path)}

    def run(argv, **kw):
        return subprocess.run(argv, env=with_empty_path, **kw)

    assert execute(steps, 1, 0, run=run) == 127
    assert "'gcloud' is not on PATH" in capsys.readouterr().err


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_start_and_stop_commands_work_in_a_real_shell(tmp_path):
    """Run the worker-side shell text locally on a fake checkout whose python only records its arguments."""
    job, _ = parse_args([*V5P, *GIN])
    checkout = tmp_path / job.remote_dir
    (checkout / ".venv" / "bin").mkdir(parents=True)
    fake_python = checkout / ".venv" / "bin" / "python"
    fake_python.write_text("#!/bin/sh\nprintf '%s\\n' \"$@\" > args.txt\nexec sleep 30\n")
    fake_python.chmod(0o755)
    shell = ["bash", "-c"]
    first = subprocess.run([*shell, commands.start_command(job)], cwd=tmp_path, timeout=10)
    assert first.returncode == 0
    pid = int((checkout / commands.PIDFILE).read_text())
    try:
        args_file, deadline = checkout / "args.txt", time.monotonic() + 5
        while not args_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.05)
        assert args_file.read_text().splitlines() == commands.job_argv(job)[1:]
        second = subprocess.run([*shell, commands.start_command(job)], cwd=tmp_path, timeout=10,
                                capture_output=True, text=True)
        assert second.returncode == 1 and "already running" in second.stderr
        assert subprocess.run([*shell, commands.stop_command(job)], cwd=tmp_path, timeout=10).returncode == 0
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(pid) and not (checkout / commands.PIDFILE).exists()
    finally:
        if _alive(pid):
            os.kill(pid, 9)
