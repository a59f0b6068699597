"""Reference-derived time limits vs a fixed limit: how many verdicts change (target: none).

    python benchmarks/reference_time_limits.py [--hefix_plus OUT/hefix_plus/test.jsonl] [--floor 1] [--factor 4]

Judges the MBPP reference solutions (on their tests) and, given a HeFix+ build, the EvalPlus canonical
solutions (on all their hidden inputs) twice: under a fixed limit (``--fixed``, 10 s) and under each problem's
limit ``max(floor, factor x the reference's measured time)`` (measured in the pool, cached under ``--cache``).
Prints the verdicts that differ, and how the derived limits are spread.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import pathlib
import statistics
import time

from next_jax.data.example import read_examples
from next_jax.data.time_limits import reference_candidates
from next_jax.execution import time_limits
from next_jax.execution.pool import VerificationPool
from next_jax.execution.verdict import Candidate

REPO = pathlib.Path(__file__).resolve().parents[1]


def mbpp_references(data: pathlib.Path) -> list[Candidate]:
    with open(data / "mbpp" / "mbpp.jsonl") as f:
        records = [json.loads(line) for line in f]
    return [Candidate(f"mbpp/{r['task_id']}", r["code"], tuple(r["test_list"]), r["test_setup_code"])
            for r in records]


def compare(pool: VerificationPool, name: str, references: list[Candidate], args: argparse.Namespace) -> int:
    cache = pathlib.Path(args.cache) / f"{name}_reference_times.json"
    start = time.perf_counter()
    times = time_limits.reference_times(pool, references, cache)
    policy = time_limits.TimeLimitPolicy(args.floor, args.factor, args.fixed)
    limits = {k: policy.limit(t) for k, t in times.items()}
    measured = time.perf_counter() - start
    fixed = pool.verify([dataclasses.replace(c, timeout=args.fixed) for c in references])
    derived = pool.verify([dataclasses.replace(c, timeout=limits[c.id]) for c in references])
    changed = [(a, b) for a, b in zip(fixed, derived, strict=True) if a.status != b.status]
    values = sorted(limits.values())
    print(f"{name}: {len(references)} references (times measured or read in {measured:.1f} s); "
          f"fixed {args.fixed:g} s: {dict(collections.Counter(v.status for v in fixed))}")
    print(f"  derived limits: {sum(v == args.floor for v in values)} at the {args.floor:g} s floor, "
          f"median {statistics.median(values):.2f} s, max {values[-1]:.2f} s; "
          f"no usable reference time: {sum(t.seconds is None for t in times.values())}")
    print(f"  verdicts that change against the fixed limit: {len(changed)}")
    for a, b in changed:
        print(f"    {a.id}: fixed {a.status} -> derived {b.status} (limit {limits[a.id]:.2f} s, "
              f"reference {times[a.id].seconds} s)")
    return len(changed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.environ.get("NEXT_JAX_DATA", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--hefix_plus", help="test.jsonl of a HeFix+ build (launch/build_mbpp_r.py --hefix_plus)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--floor", type=float, default=time_limits.DEFAULT_FLOOR_S)
    parser.add_argument("--factor", type=float, default=time_limits.DEFAULT_FACTOR)
    parser.add_argument("--fixed", type=float, default=10.0)
    parser.add_argument("--cache", default="/tmp/next-jax-reference-times", help="directory of the time caches")
    args = parser.parse_args()
    os.makedirs(args.cache, exist_ok=True)
    with VerificationPool(workers=args.workers, timeout=args.fixed) as pool:
        changed = compare(pool, "mbpp", mbpp_references(pathlib.Path(args.data)), args)
        if args.hefix_plus:
            changed += compare(pool, "hefix_plus", reference_candidates(read_examples(args.hefix_plus)), args)
    print(f"total verdict changes: {changed}")


if __name__ == "__main__":
    main()
