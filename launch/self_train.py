"""NExT self-training: `python launch/self_train.py --gin_file=gin/experiments/tiny_cpu.gin [--gin_file=...]
[--gin.NAME=VALUE ...] [--gin_search_paths=DIR,...] [--run_dir=DIR]`.

T5X's flag conventions. Running the same command on an existing run directory resumes it; a different
configuration there is refused unless `--gin.ALLOW_CONFIG_CHANGE=True`. The loop lives in
`next_jax.selftrain`; this file only parses flags.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gin_file", action="append", default=[], help="gin file (repeatable)")
    parser.add_argument("--gin_search_paths", default="", help="comma-separated directories for gin includes")
    parser.add_argument("--run_dir", default=None, help="run directory (default: gin RUN_DIR or runs/<config>)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args, rest = parser.parse_known_args(argv)
    bindings = []
    for arg in rest:
        if not arg.startswith("--gin."):
            parser.error(f"unrecognised argument {arg!r} (gin bindings are --gin.NAME=VALUE)")
        bindings.append(arg[len("--gin."):])
    if not args.gin_file:
        parser.error("give at least one --gin_file (e.g. gin/experiments/tiny_cpu.gin)")
    return args, bindings


def main(argv: list[str] | None = None) -> int:
    args, bindings = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("next_jax.selftrain").setLevel(logging.INFO)
    from next_jax import host_memory

    host_memory.reuse_freed_memory()  # before jax starts its CPU client (see next_jax/host_memory.py)
    from next_jax.selftrain.launch_config import ConfigError, run_from_flags

    try:
        run_from_flags(args.gin_file, bindings, search_paths=[p for p in args.gin_search_paths.split(",") if p]
                       + [str(REPO)], run_dir=args.run_dir)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
