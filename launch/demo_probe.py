"""What is self-training's data worth? `python launch/demo_probe.py --source=RUN --run_dir=OUT
--demos=seed,pool_gold [--name=NAME] [--gin.NAME=VALUE ...]`.

Fine-tunes the base of the finished (or past-iteration-0) run RUN on the chosen demonstration sets with the
loop's own fine-tune and evaluation, in a new run directory OUT forked from RUN (RUN is only read). The config
is RUN's `config.gin` plus the `--gin.` bindings (say `--gin.FinetuneSettings.steps=180`,
`--gin.FilterSettings.rationale_check=None`, `--gin.EvalSettings.notrace=False`). Demo sets: see
`next_jax/selftrain/demo_probe.py`. The logic lives there; this file only parses flags.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from next_jax.gin_flags import bound_value, gin_bindings

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="a self-training run directory past its base stage")
    parser.add_argument("--run_dir", required=True, help="the probe's own run directory (forked from --source)")
    parser.add_argument("--demos", required=True, help="comma-separated demo sets, e.g. seed,pool_gold")
    parser.add_argument("--name", default=None, help="the fine-tune's stage name (default: the demo sets joined)")
    args, rest = parser.parse_known_args(argv)
    bindings = gin_bindings(parser, rest)
    return args, bindings


def main(argv: list[str] | None = None) -> int:
    args, bindings = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING)
    from next_jax.execution.backend import make_pool
    from next_jax.selftrain import demo_probe
    from next_jax.selftrain.launch_config import ConfigError, parse

    source = Path(args.source)
    demos = [d for d in args.demos.split(",") if d]
    try:
        if not (source / "config.gin").exists():
            raise ConfigError(f"{source}: no config.gin (not a self-training run directory)")
        parse([str(source / "config.gin")], bindings, [str(REPO)])
        seed = bound_value("self_train.seed", 0)
        summary = demo_probe.demo_probe(
            source, args.run_dir, name=args.name or "probe_" + "_".join(demos), demos=demos, seed=seed,
            trace_format=bound_value("self_train.trace_format", "inline"),
            pool_factory=lambda: make_pool(workers=bound_value("self_train.pool_workers", 2),
                                           timeout=bound_value("self_train.pool_timeout", 5.0)),
        )
    except (ConfigError, ValueError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"records": summary["records"], "eval": summary["eval"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
