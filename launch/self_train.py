"""NExT self-training: `python launch/self_train.py --gin_file=gin/experiments/tiny_cpu.gin [--gin_file=...]
[--gin.NAME=VALUE ...] [--gin_search_paths=DIR,...] [--run_dir=DIR|URL] [--local_cache_dir=DIR]`.

T5X's flag conventions. Running the same command on an existing run directory resumes it; a different
configuration there is refused unless `--gin.ALLOW_CONFIG_CHANGE=True`. The loop lives in
`next_jax.selftrain`; this file only parses flags. A URL run directory (`gs://bucket/run`, any fsspec URL)
runs in a local cache mirrored to it after every stage (`next_jax/selftrain/run_mirror.py`).

Several hosts: run the same command on each, one process per host. A Cloud TPU slice needs no more flags;
elsewhere add `--coordinator_address=HOST:PORT --process_count=N --process_index=I` (I = 0 on HOST). The
run directory is one filesystem that every host sees, or a gs:// URL (each host then keeps a cache of its own
and orbax writes checkpoints to the URL; see docs/selftrain.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from pathlib import Path

from next_jax.gin_flags import gin_bindings

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gin_file", action="append", default=[], help="gin file (repeatable)")
    parser.add_argument("--gin_search_paths", default="", help="comma-separated directories for gin includes")
    parser.add_argument("--run_dir", default=None,
                        help="run directory or URL, e.g. gs://bucket/run (default: gin RUN_DIR or runs/<config>)")
    parser.add_argument("--local_cache_dir", default=None,
                        help="where a URL run directory is worked on locally (default: ~/.cache/next-jax/runs/"
                             "<hash of the URL>/<name>; with several processes, process I works in its pIII subfolder)")
    parser.add_argument("--coordinator_address", default=None, help="HOST:PORT of process 0 (several hosts)")
    parser.add_argument("--process_count", type=int, default=None, help="number of processes (hosts)")
    parser.add_argument("--process_index", type=int, default=None, help="this process's index, 0..N-1")
    parser.add_argument("--coordinator_bind_address", default=None,
                        help="address:port process 0 listens on (default: every interface, the port above)")
    parser.add_argument("--heartbeat_timeout_seconds", type=int, default=None,
                        help="a dead peer stops the others within this long (default: 15 with the flags above, "
                             "jax's 100 on a TPU slice)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args, rest = parser.parse_known_args(argv)
    bindings = gin_bindings(parser, rest)
    if not args.gin_file:
        parser.error("give at least one --gin_file (e.g. gin/experiments/tiny_cpu.gin)")
    cluster = (args.coordinator_address, args.process_count, args.process_index)
    if any(v is not None for v in cluster) and not all(v is not None for v in cluster):
        parser.error("give all of --coordinator_address, --process_count and --process_index, or none")
    return args, bindings


def main(argv: list[str] | None = None) -> int:
    args, bindings = parse_args(sys.argv[1:] if argv is None else argv)
    process = f"[p{args.process_index}] " if args.process_count and args.process_count > 1 else ""
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format=f"%(asctime)s {process}%(levelname)s %(name)s: %(message)s")
    logging.getLogger("next_jax.selftrain").setLevel(logging.INFO)
    logging.getLogger("next_jax.parallel").setLevel(logging.INFO)
    from next_jax import host_memory

    host_memory.reuse_freed_memory()  # before jax starts its CPU client (see next_jax/host_memory.py)
    from next_jax.parallel import distributed

    # Before anything touches jax's devices.
    distributed.initialize(args.coordinator_address, args.process_count, args.process_index,
                           coordinator_bind_address=args.coordinator_bind_address,
                           heartbeat_timeout_s=args.heartbeat_timeout_seconds)
    from next_jax.selftrain.launch_config import ConfigError, run_from_flags

    try:
        run_from_flags(args.gin_file, bindings, search_paths=[p for p in args.gin_search_paths.split(",") if p]
                       + [str(REPO)], run_dir=args.run_dir, local_cache_dir=args.local_cache_dir)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        if not args.process_count or args.process_count == 1:
            raise
        traceback.print_exc()
        print(f"error: process {args.process_index} of {args.process_count} stopped ({type(e).__name__}: "
              f"{str(e).splitlines()[0] if str(e) else ''}). A process that dies stops the others; run the same "
              "command on every host to resume.", file=sys.stderr, flush=True)
        # Not a normal exit: jax's shutdown would wait at a barrier for the dead peer, then abort.
        os._exit(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
