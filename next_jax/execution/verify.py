"""CLI: judge candidate programs in the sandboxed pool.

    python -m next_jax.execution.verify IN.jsonl OUT.jsonl [--workers N] [--timeout S] [--details] [--all_tests]
        [--backend local|ray] [--ray_address auto] [--cores_per_actor N]

Input records: ``{"id", "code", "tests": ["assert ...", ...], "setup"?: "...", "timeout"?: S}`` (a record's
``timeout`` overrides ``--timeout``). Output: one record per input line, in input order: ``id``, ``status``,
``passed``, ``total``, ``details``, ``early_stop``. A candidate's verdict is decided at its first failing test
(``early_stop`` true when tests after it were not run); ``--all_tests`` runs every test. A line that is not valid
UTF-8, not JSON, or not such a record gets status ``invalid_record`` with the reason; the run goes on.
``--backend ray`` spreads the candidates over Ray actors, each running the same sandboxed pool on its node
(``--ray_address auto``: an existing cluster; unset: a local one of ``--workers`` CPUs); see ``ray_pool``.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import sys
from collections.abc import Iterator

from next_jax.execution import verdict as v
from next_jax.execution.backend import BACKENDS, make_pool
from next_jax.execution.verdict import Candidate, Verdict


def read_candidates(path: str) -> Iterator[Candidate | Verdict]:
    """Yield a Candidate per line, or an ``invalid_record`` Verdict for a line that cannot be one."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            ident = f"line-{number}"
            try:
                record = json.loads(raw.decode("utf-8"))
                if isinstance(record, dict) and record.get("id") is not None:
                    ident = str(record["id"])
                yield Candidate.from_json(record)
            except (UnicodeDecodeError, ValueError, RecursionError) as e:
                reason = f"line {number}: {type(e).__name__}: {str(e)[:500]}"
                yield Verdict(ident, v.INVALID_RECORD, 0, 0, ({"type": "InvalidRecord", "message": reason},))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m next_jax.execution.verify", description=__doc__.split("\n")[0])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=10.0, help="wall-clock seconds per candidate")
    parser.add_argument("--details", action="store_true", help="per-test details for every candidate")
    parser.add_argument("--all_tests", action="store_true",
                        help="run every test of a failing candidate (per-test counts) instead of stopping at the first")
    parser.add_argument("--backend", choices=BACKENDS, default="local", help="where the sandboxed pool runs")
    parser.add_argument("--ray_address", default=None, help="Ray cluster to join ('auto'); default: a local one")
    parser.add_argument("--cores_per_actor", type=int, default=None,
                        help="Ray: pool workers per actor (default: one actor per node with all its CPUs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    counts: collections.Counter[str] = collections.Counter()
    ray_options = ({"ray_address": args.ray_address, "cores_per_actor": args.cores_per_actor}
                   if args.backend == "ray" else {})
    with make_pool(args.workers, args.timeout, backend=args.backend, **ray_options) as pool, \
            open(args.output, "w") as out:
        pending = [item if isinstance(item, Verdict) else pool.submit(item, args.details, args.all_tests)
                   for item in read_candidates(args.input)]
        for item in pending:
            verdict = item if isinstance(item, Verdict) else item.result()
            counts[verdict.status] += 1
            out.write(json.dumps(verdict.to_json()) + "\n")
    print(json.dumps({"total": sum(counts.values()), **counts}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
