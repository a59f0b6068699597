"""CLI: trace one call of a program inside the sandbox and print the trace.

    python -m next_jax.execution.trace PROGRAM.py --call "f(1, [2, 3])" [--format inline|scratchpad|json]

``json`` prints one object with ``steps`` (``step``, ``line``, ``changes``), ``result`` and ``truncated``.
"""

from __future__ import annotations

import argparse
import json
import sys

from next_jax.execution.pool import VerificationPool
from next_jax.execution.render import RENDERERS, render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m next_jax.execution.trace", description=__doc__.split("\n")[0])
    parser.add_argument("program", help="path of a Python source file")
    parser.add_argument("--call", required=True, help='expression to trace, e.g. "f(1, [2, 3])"')
    parser.add_argument("--format", default="inline", choices=sorted({*RENDERERS, "json"}))
    parser.add_argument("--max-events", type=int, default=10_000)
    parser.add_argument("--max-bytes", type=int, default=200_000)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    with open(args.program, encoding="utf-8", errors="surrogateescape") as f:
        source = f.read()
    with VerificationPool(workers=1, timeout=args.timeout) as pool:
        try:
            trace = pool.trace(source, args.call, max_events=args.max_events, max_bytes=args.max_bytes)
        except SyntaxError as e:
            print(f"syntax error: {e}", file=sys.stderr)
            return 2
        except (RuntimeError, TimeoutError) as e:
            print(str(e), file=sys.stderr)
            return 1
    if args.format == "json":
        print(json.dumps(trace.to_json()))
    else:
        print(render(trace, source, args.format))
    return 0


if __name__ == "__main__":
    sys.exit(main())
