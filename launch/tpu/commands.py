"""The commands that run a self-training job on a Cloud TPU slice, as argv lists (nothing here runs them).

Route: a queued resource holds the slice; `gcloud compute tpus tpu-vm ssh --worker=all` runs the same command on
every TPU VM at once (multi-host jax needs every host to start the same program). Flags were checked against the
gcloud reference pages of `compute tpus queued-resources create/describe/delete` and `compute tpus tpu-vm
ssh/scp`. Remote paths are relative to the login directory, where ssh and scp start.
"""

from __future__ import annotations

import re
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path

from launch.tpu.slices import SliceSpec

REPO = Path(__file__).resolve().parents[2]
STEPS = ("create", "wait", "install", "start", "logs", "stop", "delete")
DEFAULT_STEPS = ("create", "wait", "install", "start", "logs")
LOG = "logs/self_train.log"
PIDFILE = "logs/self_train.pid"


@dataclass(frozen=True)
class TpuJob:
    """Everything a launch needs; every field comes from a flag of run_job.py."""

    project: str
    zone: str
    name: str  # queued resource id and TPU node id
    slice: SliceSpec
    runtime_version: str
    provisioning: str = "on-demand"  # on-demand | spot | reserved
    gin_files: tuple[str, ...] = ()
    gin_bindings: tuple[str, ...] = ()  # NAME=VALUE, as written after --gin.
    run_dir: str | None = None
    repo_url: str | None = None  # git-clone this on every worker; None: copy the local checkout (git archive)
    repo_ref: str | None = None  # default: origin/HEAD for a clone, HEAD for the local copy
    remote_dir: str = "next-jax"
    python: str = "python3.11"  # the project needs >= 3.11; Ubuntu 22.04 images ship 3.10
    env: tuple[str, ...] = ()  # KEY=VALUE set for the job
    setup: tuple[str, ...] = ()  # extra shell commands run on every worker after the install
    create_flags: tuple[str, ...] = ()  # more flags for queued-resources create (--network=..., ...)
    log_worker: str = "0"


@dataclass(frozen=True)
class Step:
    """One command of a launch. `action` tells the runner how to treat it (see run_job.py)."""

    name: str
    argv: list[str]
    why: str
    action: str = "run"  # run | local (runs in the checkout) | probe (its exit status: does the slice exist) | create | wait


def _gcloud_tpus(job: TpuJob, *words: str) -> list[str]:
    return ["gcloud", "compute", "tpus", *words, f"--zone={job.zone}", f"--project={job.project}"]


def describe_argv(job: TpuJob, fmt: str | None = None) -> list[str]:
    argv = _gcloud_tpus(job, "queued-resources", "describe", job.name)
    return argv + [f"--format={fmt}"] if fmt else argv


def create_argv(job: TpuJob) -> list[str]:
    argv = _gcloud_tpus(job, "queued-resources", "create", job.name, f"--node-id={job.name}",
                        f"--accelerator-type={job.slice.accelerator_type}",
                        f"--runtime-version={job.runtime_version}")
    if job.provisioning == "spot":
        argv.append("--spot")
    elif job.provisioning == "reserved":
        argv.append("--reserved")
    elif job.provisioning != "on-demand":
        raise ValueError(f"provisioning must be on-demand, spot or reserved, not {job.provisioning!r}")
    return argv + list(job.create_flags)


def delete_argv(job: TpuJob) -> list[str]:
    # --force deletes the TPU nodes first (else the request is refused while they run); --quiet skips the prompt.
    return _gcloud_tpus(job, "queued-resources", "delete", job.name, "--force", "--quiet")


def ssh_argv(job: TpuJob, command: str, worker: str = "all") -> list[str]:
    return _gcloud_tpus(job, "tpu-vm", "ssh", job.name, f"--worker={worker}", f"--command={command}")


def scp_argv(job: TpuJob, local: str, worker: str = "all") -> list[str]:
    return _gcloud_tpus(job, "tpu-vm", "scp", local, f"{job.name}:", f"--worker={worker}")


def job_argv(job: TpuJob) -> list[str]:
    """The command every worker runs. No coordinator flags: on a TPU slice `jax.distributed.initialize()` finds
    its peers itself (GceTpuCluster reads the TPU VM metadata)."""
    argv = [".venv/bin/python", "launch/self_train.py"]
    argv += [f"--gin_file={f}" for f in job.gin_files]
    argv += [f"--gin.{b}" for b in job.gin_bindings]
    if job.run_dir:
        argv.append(f"--run_dir={job.run_dir}")
    if job.env:
        argv = ["env", *job.env, *argv]
    return argv


def start_command(job: TpuJob) -> str:
    """Shell text for one worker: refuse a second copy, then start the job detached so ssh can return."""
    d = shlex.quote(job.remote_dir)
    # Separate statements, not one &&-chain: `a && b &` would background the whole chain, and $! would name a
    # subshell instead of the job. setsid makes the job lead its own process group, which `stop` signals. A
    # non-interactive shell starts `&` jobs with SIGINT ignored, and Python then installs no KeyboardInterrupt
    # handler; `env --default-signal=INT` (coreutils >= 8.31) restores it so `stop` can end the job cleanly.
    return (f"cd {d} && mkdir -p logs || exit 1; "
            f'if [ -f {PIDFILE} ] && kill -0 "$(cat {PIDFILE})" 2>/dev/null; '
            f"then echo 'self_train is already running (pid in {PIDFILE})' >&2; exit 1; fi; "
            f"setsid nohup env --default-signal=INT {shlex.join(job_argv(job))} >> {LOG} 2>&1 < /dev/null & "
            f"echo $! > {PIDFILE}")


def stop_command(job: TpuJob, grace_s: int = 60) -> str:
    """SIGINT to the job's process group (KeyboardInterrupt: the verification pool shuts down cleanly), then
    SIGKILL whatever is left after `grace_s` seconds."""
    d = shlex.quote(job.remote_dir)
    group = f'-"$(cat {PIDFILE})"'
    return (f"cd {d} || exit 0; [ -f {PIDFILE} ] || exit 0; kill -INT -- {group} 2>/dev/null; "
            f"for _ in $(seq {grace_s}); do kill -0 -- {group} 2>/dev/null || break; sleep 1; done; "
            f"kill -KILL -- {group} 2>/dev/null; rm -f {PIDFILE}")


def _local_tarball(job: TpuJob) -> str:
    return str(Path(tempfile.gettempdir()) / f"{job.name}-src.tar.gz")


def install_steps(job: TpuJob) -> list[Step]:
    """Put the project on every worker (clone or copy), then a venv with `pip install -e '.[tpu]'`."""
    d = shlex.quote(job.remote_dir)
    steps = []
    if job.repo_url:
        ref = shlex.quote(job.repo_ref or "origin/HEAD")
        fetch = (f"if [ -d {d}/.git ]; then git -C {d} fetch -q origin; "
                 f"else git clone -q {shlex.quote(job.repo_url)} {d}; fi && git -C {d} checkout -q --detach {ref}")
        steps.append(Step("install", ssh_argv(job, fetch), f"clone {job.repo_url} on every worker"))
    else:
        tarball = _local_tarball(job)
        remote = Path(tarball).name
        steps += [
            Step("install", ["git", "-C", str(REPO), "archive", "--format=tar.gz", f"--output={tarball}",
                             job.repo_ref or "HEAD"],
                 "pack the local checkout (committed files only: commit first)", action="local"),
            Step("install", scp_argv(job, tarball), "copy it to every worker"),
            Step("install", ssh_argv(job, f"mkdir -p {d} && tar -xzf {remote} -C {d} && rm {remote}"),
                 "unpack it on every worker"),
        ]
    py = job.python
    get_python = ""
    if re.fullmatch(r"python3\.\d+", py):  # a bare versioned name: apt can provide it when the image lacks it
        get_python = (f"(command -v {py} >/dev/null || (sudo apt-get update -qq && "
                      f"sudo apt-get install -y -qq {py} {py}-venv)) && ")
    pip = ".venv/bin/pip"
    install = (f"cd {d} && {get_python}{shlex.quote(py)} -m venv .venv && {pip} install -q --upgrade pip"
               f" && {shlex.join([pip, 'install', '-q', '-e', '.[tpu]'])}")
    steps.append(Step("install", ssh_argv(job, install), "a venv with the project and jax[tpu] on every worker"))
    steps += [Step("install", ssh_argv(job, f"cd {d} && {cmd}"), "extra setup on every worker")
              for cmd in job.setup]
    return steps


def _workers(job: TpuJob) -> str:
    n = job.slice.workers
    return f"all {n} workers at once (one log each)" if n > 1 else "the slice's one worker"


def plan(job: TpuJob, steps: tuple[str, ...] = DEFAULT_STEPS) -> list[Step]:
    """The commands for the named steps, in the order of STEPS (create before start, delete last)."""
    unknown = set(steps) - set(STEPS)
    if unknown:
        raise ValueError(f"unknown steps {sorted(unknown)} (steps: {', '.join(STEPS)})")
    out: list[Step] = []
    for name in (s for s in STEPS if s in steps):
        if name == "create":
            out += [Step("create", describe_argv(job), "reuse the slice if this finds it", action="probe"),
                    Step("create", create_argv(job), "else queue a request for it", action="create")]
        elif name == "wait":
            out.append(Step("wait", describe_argv(job, "value(state.state)"),
                            "poll until the state is ACTIVE", action="wait"))
        elif name == "install":
            out += install_steps(job)
        elif name == "start":
            out.append(Step("start", ssh_argv(job, start_command(job)),
                            f"start the job on {_workers(job)}, detached, logging to {job.remote_dir}/{LOG}"))
        elif name == "logs":
            out.append(Step("logs", ssh_argv(job, f"tail -n 200 -F {shlex.quote(job.remote_dir)}/{LOG}",
                                             worker=job.log_worker),
                            f"follow worker {job.log_worker}'s log (Ctrl-C stops following; the job keeps going)"))
        elif name == "stop":
            out.append(Step("stop", ssh_argv(job, stop_command(job)), "end the job on every worker"))
        elif name == "delete":
            out.append(Step("delete", delete_argv(job), "delete the slice and its queued resource"))
    return out
