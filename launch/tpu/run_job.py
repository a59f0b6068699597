"""Run self-training on a Cloud TPU slice: queue (or reuse) the slice, install the project on every worker, start
`launch/self_train.py` on all workers at once, follow the log; `--steps=stop,delete` ends it.

    python launch/tpu/run_job.py --project=my-proj --zone=us-east5-a --accelerator=v5p-8 \\
        --gin_file=gin/experiments/tiny_cpu.gin --gin.NAME=VALUE --run_dir=gs://bucket/runs/a --dry_run

--dry_run prints every command with its values filled in and runs nothing. Without it the commands run in
order and the first failure stops the launch. Steps (--steps, comma-separated): create, wait, install, start,
logs (the default set, in that order), stop, delete. docs/scale.md ("Launching on Cloud TPU") has the
walk-through and the GKE/xpk route.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `launch.tpu` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from launch.tpu.commands import DEFAULT_STEPS, REPO, STEPS, Step, TpuJob, plan  # noqa: E402
from launch.tpu.slices import parse_accelerator  # noqa: E402
from next_jax.gin_flags import gin_bindings  # noqa: E402

# Queued-resource states from which ACTIVE will not come (REST reference, QueuedResourceState).
_DEAD_STATES = {"FAILED", "SUSPENDING", "SUSPENDED", "DELETING"}


def parse_args(argv: list[str]) -> tuple[TpuJob, argparse.Namespace]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--project", required=True, help="Google Cloud project")
    ap.add_argument("--zone", required=True, help="zone with TPU capacity, e.g. us-east5-a (v5p), us-west4-a (v5e)")
    ap.add_argument("--accelerator", required=True, help="v5p-8, v5litepod-256 (or v5e-256), v6e-16, v4-32, ...")
    ap.add_argument("--name", default=None, help="queued resource and TPU node name (default next-jax-ACCELERATOR)")
    ap.add_argument("--runtime_version", default=None, help="TPU software version (default: the JAX one for "
                    "the generation, e.g. v2-alpha-tpuv5 for v5p, v2-alpha-tpuv5-lite for v5e)")
    capacity = ap.add_mutually_exclusive_group()
    capacity.add_argument("--spot", action="store_true", help="Spot capacity (preemptible, cheaper)")
    capacity.add_argument("--reserved", action="store_true", help="capacity from the project's reservation")
    ap.add_argument("--create_flag", action="append", default=[],
                    help="extra flag for queued-resources create, e.g. --create_flag=--network=my-net (repeatable)")
    ap.add_argument("--gin_file", action="append", default=[], help="gin file, relative to the repo (repeatable)")
    ap.add_argument("--run_dir", default=None, help="run directory; a multi-host slice needs a shared one (gs://)")
    ap.add_argument("--repo_url", default=None, help="git URL cloned on every worker (default: copy this "
                    "checkout's committed tree with git archive)")
    ap.add_argument("--repo_ref", default=None, help="commit/branch to run (default origin/HEAD for --repo_url, "
                    "HEAD for the local copy)")
    ap.add_argument("--remote_dir", default="next-jax", help="project directory on each worker, under $HOME")
    ap.add_argument("--python", default="python3.11", help="interpreter for the workers' venv (>= 3.11)")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the job (repeatable)")
    ap.add_argument("--setup", action="append", default=[],
                    help="shell command run in the project directory on every worker after install, e.g. "
                    "fetching data (repeatable)")
    ap.add_argument("--log_worker", default="0", help="worker whose log `logs` follows: an index or all")
    ap.add_argument("--steps", default=",".join(DEFAULT_STEPS), help=f"comma-separated, of: {', '.join(STEPS)}")
    ap.add_argument("--wait_timeout", type=float, default=7200, help="seconds to wait for the slice to be ACTIVE")
    ap.add_argument("--poll", type=float, default=30, help="seconds between state checks while waiting")
    ap.add_argument("--dry_run", action="store_true", help="print the commands; run nothing")
    args, rest = ap.parse_known_args(argv)
    bindings = gin_bindings(ap, rest)
    if not args.gin_file:
        ap.error("give at least one --gin_file")
    bad_env = [e for e in args.env if "=" not in e or not e.split("=", 1)[0].isidentifier()]
    if bad_env:
        ap.error(f"--env takes KEY=VALUE, not {bad_env}")
    try:
        spec = parse_accelerator(args.accelerator)
        steps = tuple(s.strip() for s in args.steps.split(",") if s.strip())
        job = TpuJob(
            project=args.project, zone=args.zone, name=args.name or f"next-jax-{spec.accelerator_type}", slice=spec,
            runtime_version=args.runtime_version or spec.runtime_version,
            provisioning="spot" if args.spot else "reserved" if args.reserved else "on-demand",
            gin_files=tuple(args.gin_file), gin_bindings=tuple(bindings), run_dir=args.run_dir,
            repo_url=args.repo_url, repo_ref=args.repo_ref, remote_dir=args.remote_dir, python=args.python,
            env=tuple(args.env), setup=tuple(args.setup), create_flags=tuple(args.create_flag),
            log_worker=args.log_worker)
        plan(job, steps)  # validates the step names
    except ValueError as e:
        ap.error(str(e))
    args.steps = steps
    return job, args


def warnings_for(job: TpuJob) -> list[str]:
    """Mistakes that would cost a slice's time; printed, never fatal."""
    out = [f"gin file {f} is not in this checkout" for f in job.gin_files if not (REPO / f).is_file()]
    if job.slice.workers > 1 and not (job.run_dir or "").startswith("gs://"):
        out.append(f"{job.slice.workers} workers but --run_dir is not gs://: each host would write its own "
                   "local run directory")
    return out


def print_plan(job: TpuJob, steps: list[Step]) -> None:
    print(f"# {job.slice.describe()}; runtime {job.runtime_version}; zone {job.zone}; project {job.project}; "
          f"capacity {job.provisioning}")
    for step in steps:
        print(f"# {step.name}: {step.why}")
        print(shlex.join(step.argv))


def wait_active(argv: list[str], timeout_s: float, poll_s: float, run: Callable = subprocess.run,
                sleep: Callable[[float], None] = time.sleep) -> int:
    """Poll `describe --format=value(state.state)` until ACTIVE; non-zero on a dead state or the timeout."""
    deadline, last = time.monotonic() + timeout_s, None
    while True:
        done = run(argv, capture_output=True, text=True)
        if done.returncode:
            print(done.stderr, end="", file=sys.stderr)
            return done.returncode
        state = done.stdout.strip()
        if state != last:
            print(f"  state: {state}", flush=True)
            last = state
        if state == "ACTIVE":
            return 0
        if state in _DEAD_STATES:
            print(f"error: the queued resource is {state}; delete it (--steps=delete) and try again",
                  file=sys.stderr)
            return 1
        if time.monotonic() >= deadline:
            print(f"error: still {state} after {timeout_s:.0f} s; rerun with --steps=wait,install,start,logs "
                  "to keep waiting", file=sys.stderr)
            return 1
        sleep(poll_s)


def execute(steps: list[Step], timeout_s: float, poll_s: float, run: Callable = subprocess.run) -> int:
    """Run the steps in order; the first failure stops everything after it."""
    slice_exists = False
    for i, step in enumerate(steps):
        shown = shlex.join(step.argv)
        if step.action == "create" and slice_exists:
            print("# the queued resource exists: reusing it", flush=True)
            continue
        print(f"+ {shown}", flush=True)
        try:
            if step.action == "probe":
                slice_exists = run(step.argv, capture_output=True, text=True).returncode == 0
                continue
            if step.action == "wait":
                rc = wait_active(step.argv, timeout_s, poll_s, run=run)
            else:
                rc = run(step.argv, cwd=REPO if step.action == "local" else None).returncode
        except FileNotFoundError:
            print(f"error: {step.argv[0]!r} is not on PATH (gcloud: install the Google Cloud CLI)", file=sys.stderr)
            return 127
        except KeyboardInterrupt:
            if step.name == "logs":
                print("\nstopped following the log; the job keeps running", file=sys.stderr)
                return 0
            raise
        if rc:
            later = list(dict.fromkeys(s.name for s in steps[i + 1:]))
            if later and later[0] == step.name:
                later[0] = f"the rest of {step.name}"
            left = ", ".join(later) or "nothing"
            print(f"error: step {step.name!r} failed with exit status {rc}: {shown}\n(not run: {left})",
                  file=sys.stderr)
            return rc
    return 0


def main(argv: list[str] | None = None) -> int:
    job, args = parse_args(sys.argv[1:] if argv is None else argv)
    for warning in warnings_for(job):
        print(f"warning: {warning}", file=sys.stderr)
    steps = plan(job, args.steps)
    if args.dry_run:
        print_plan(job, steps)
        return 0
    return execute(steps, args.wait_timeout, args.poll)


if __name__ == "__main__":
    sys.exit(main())
