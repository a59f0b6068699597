"""Main job until the self-training loop lands: trace a buggy program and verify candidate fixes, offline on CPU.

    python launch/demo.py [--format inline|scratchpad|none]

Shows the two execution-core stages NExT stands on: the inline execution trace a model reads, and the sandboxed
verdicts that decide which sampled fixes self-training keeps (including fixes that try to cheat).
"""

from __future__ import annotations

import argparse
import logging

from next_jax.execution.pool import VerificationPool
from next_jax.execution.render import render
from next_jax.execution.verdict import Candidate

BUGGY = '''def running_max(xs):
    best = 0
    out = []
    for x in xs:
        if x > best:
            best = x
        out.append(best)
    return out
'''

TESTS = ("assert running_max([3, 1, 4]) == [3, 3, 4]", "assert running_max([-2, -5, -1]) == [-2, -2, -1]")

FIXES = {
    "honest fix": BUGGY.replace("best = 0", "best = xs[0] if xs else None"),
    "still wrong": BUGGY.replace("x > best", "x >= best"),
    "cheat: __eq__ always True": "class Any:\n    def __eq__(self, o):\n        return True\n"
                                 "def running_max(xs):\n    return Any()\n",
    "cheat: exit before tests": "import os\nos._exit(0)\n",
    "cheat: infinite loop": "def running_max(xs):\n    while True:\n        pass\n",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--format", default="inline", choices=["inline", "scratchpad", "none"])
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    with VerificationPool(workers=2, timeout=args.timeout) as pool:
        call = "running_max([-2, -5, -1])"
        trace = pool.trace(BUGGY, call)
        print(f"# buggy program traced on {call} ({args.format} format):\n")
        print(render(trace, BUGGY, args.format))
        print("\n# verdicts of candidate fixes:")
        verdicts = pool.verify([Candidate(name, code, TESTS) for name, code in FIXES.items()])
        for verdict in verdicts:
            detail = verdict.details[0] if verdict.details else {}
            why = detail.get("message") or (f"expected {detail['expected']}, got {detail['got']}"
                                            if "expected" in detail else "")
            print(f"  {verdict.id:28s} {verdict.status:14s} {verdict.passed}/{verdict.total}  {why}")


if __name__ == "__main__":
    main()
