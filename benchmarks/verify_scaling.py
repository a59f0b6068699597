"""Verification throughput by number of Ray actors, against the local pool in the same run.

    python benchmarks/verify_scaling.py [--actors 1 2] [--workers_per_actor 1] [--limit 150] [--timeout 5]
        [--max_seconds 1] [--ray_address auto] [--json OUT]

Candidates: the first ``--limit`` MBPP reference solutions and one mutant of each (MBPP-R's operators), the mix a
self-training loop verifies. For each actor count k, back to back on the same candidates: the local
``VerificationPool`` with ``k x workers_per_actor`` workers, then a ``RayVerificationPool`` of k actors with
``workers_per_actor`` workers each; both pools started before the clock runs. Without ``--ray_address`` a local
Ray cluster of ``max(k) x workers_per_actor`` CPUs is started (on one machine more actors than cores only share
them). A local pre-pass leaves out the candidates that run longer than ``--max_seconds`` or time out (one slow
MBPP reference, 123, would otherwise set the pace of a 1-worker row). Printed: candidates/s of each side, their ratio, verdict agreement, and the overhead of the Ray hop per
candidate, measured two ways: one candidate at a time (latency through Ray minus local, same honest candidate)
and a bare round trip to an actor; and CPU per candidate: of this (driver) process alone, the host that samples in
a real run (local: the pool's dispatcher threads; Ray: the Ray client), and of every process the run started
(local pool, or local cluster: driver, actors, sandboxes, raylet), so the Ray column minus the local one is the
CPU the hop costs in all.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import statistics
import time

from next_jax.data.mutation import mutants
from next_jax.execution.pool import VerificationPool
from next_jax.execution.verdict import Candidate

REPO = pathlib.Path(__file__).resolve().parents[1]
HONEST = Candidate("honest", "def add(a, b):\n    return a + b\n", ("assert add(2, 3) == 5",))


def build_candidates(data: pathlib.Path, limit: int, seed: int = 0) -> list[Candidate]:
    rng = random.Random(seed)
    with open(data / "mbpp" / "mbpp.jsonl") as f:
        records = [json.loads(line) for line in f][:limit]
    out = []
    for r in records:
        tests, setup = tuple(r["test_list"]), r["test_setup_code"]
        out.append(Candidate(f"{r['task_id']}/ref", r["code"], tests, setup))
        out += [Candidate(f"{r['task_id']}/mut", m.code, tests, setup) for m in mutants(r["code"], rng, 1)]
    return out


def _cpu_seconds(pid: int) -> float:
    """CPU time of ``pid``, its live descendants and the children they reaped (from /proc)."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry)] = int(fields[1]), sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    tree, grew = {pid}, True
    while grew:
        new = {p for p, (parent, _) in stats.items() if parent in tree} - tree
        tree |= new
        grew = bool(new)
    return sum(stats[p][1] for p in tree if p in stats)


def timed_verify(pool, candidates: list[Candidate]) -> tuple[list, float, float, float]:
    """Verdicts, seconds, and CPU seconds of this process and of all it started."""
    pool.verify(candidates[:4])  # warm: spares forked, actors' first calls made
    own, tree = time.process_time(), _cpu_seconds(os.getpid())
    start = time.perf_counter()
    verdicts = pool.verify(candidates)
    seconds = time.perf_counter() - start
    return verdicts, seconds, time.process_time() - own, _cpu_seconds(os.getpid()) - tree


def one_at_a_time_ms(pool, n: int) -> float:
    """Median latency of one honest candidate verified alone (nothing else in flight)."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        pool.verify([HONEST])
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2], help="actor counts to measure")
    parser.add_argument("--workers_per_actor", type=int, default=1)
    parser.add_argument("--limit", type=int, default=300, help="MBPP tasks (a reference and a mutant each)")
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--max_seconds", type=float, default=1.0,
                        help="leave out candidates slower than this in a local pre-pass (0: keep all)")
    parser.add_argument("--latency_samples", type=int, default=40)
    parser.add_argument("--ray_address", default=None, help="an existing cluster ('auto'); default: a local one")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--data", default=os.environ.get("NEXT_JAX_DATA", str(REPO.parent / "shared" / "data")))
    args = parser.parse_args()

    import ray

    from next_jax.execution.ray_pool import RayVerificationPool

    candidates = build_candidates(pathlib.Path(args.data), args.limit)
    if args.max_seconds > 0:
        with VerificationPool(workers=max(args.actors) * args.workers_per_actor, timeout=args.timeout) as pool:
            slow = {v.id for v in pool.verify(candidates)
                    if v.status == "timeout" or (v.seconds or 0) > args.max_seconds}
        candidates = [c for c in candidates if c.id not in slow]
        print(f"left out (over {args.max_seconds:g} s or timing out in a local pre-pass): {', '.join(sorted(slow))}")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    local_cluster = {} if args.ray_address else {"num_cpus": max(args.actors) * args.workers_per_actor}
    ray.init(address=args.ray_address, include_dashboard=False, configure_logging=False, log_to_driver=False,
             **local_cluster)
    print(f"{len(candidates)} candidates ({sum(c.id.endswith('/ref') for c in candidates)} references), "
          f"{args.workers_per_actor} worker(s) per actor, timeout {args.timeout:g}s, {os.cpu_count()} CPUs here, "
          f"Ray cluster CPUs {ray.cluster_resources().get('CPU', 0):g}, load {os.getloadavg()[0]:.1f}")
    rows = []
    try:
        for k in args.actors:
            workers = k * args.workers_per_actor
            with VerificationPool(workers=workers, timeout=args.timeout) as pool:
                local, local_s, local_cpu, local_all = timed_verify(pool, candidates)
                local_ms = one_at_a_time_ms(pool, args.latency_samples)
            with RayVerificationPool(timeout=args.timeout, cores_per_actor=args.workers_per_actor,
                                     num_actors=k) as rpool:
                remote, remote_s, remote_cpu, remote_all = timed_verify(rpool, candidates)
                remote_ms = one_at_a_time_ms(rpool, args.latency_samples)
                handle = rpool.actors[0]["handle"]
                start = time.perf_counter()
                for _ in range(args.latency_samples):
                    ray.get(handle.ready.remote())
                hop_ms = 1000 * (time.perf_counter() - start) / args.latency_samples
            n = len(candidates)
            agree = sum(a == b for a, b in zip(local, remote, strict=True))
            row = {"actors": k, "workers": workers, "candidates": n, "local_per_s": round(n / local_s, 1),
                   "ray_per_s": round(n / remote_s, 1), "ratio": round(local_s / remote_s, 3), "agree": agree,
                   "one_candidate_local_ms": round(local_ms, 2), "one_candidate_ray_ms": round(remote_ms, 2),
                   "ray_hop_per_candidate_ms": round(remote_ms - local_ms, 2),
                   "actor_round_trip_ms": round(hop_ms, 2),
                   "driver_cpu_ms_local": round(1000 * local_cpu / n, 2), "driver_cpu_ms_ray": round(1000 * remote_cpu / n, 2),
                   "all_cpu_ms_local": round(1000 * local_all / n, 2), "all_cpu_ms_ray": round(1000 * remote_all / n, 2)}
            rows.append(row)
            print(f"actors {k} ({workers} workers): local {row['local_per_s']:6.1f}/s  ray {row['ray_per_s']:6.1f}/s  "
                  f"ratio {row['ratio']:.2f}  agree {agree}/{n}  one candidate: local {local_ms:.1f} ms, "
                  f"ray {remote_ms:.1f} ms (hop {remote_ms - local_ms:+.1f} ms)  actor round trip {hop_ms:.2f} ms",
                  flush=True)
            print(f"    CPU per candidate: driver process local {row['driver_cpu_ms_local']:.2f} ms, ray "
                  f"{row['driver_cpu_ms_ray']:.2f} ms; everything started here local {row['all_cpu_ms_local']:.2f} ms, "
                  f"ray {row['all_cpu_ms_ray']:.2f} ms", flush=True)
            for a, b in zip(local, remote, strict=True):
                if a != b:
                    print(f"    differ {a.id}: local {a.status} {a.details[:1]} / ray {b.status} {b.details[:1]}"[:300])
    finally:
        ray.shutdown()
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
