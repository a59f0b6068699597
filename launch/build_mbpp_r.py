"""Build MBPP-R (and optionally HeFix+) under an output directory.

    .venv/bin/python launch/build_mbpp_r.py --gin_file=gin/data/mbpp_r_mutation.gin --out=out/data [--hefix_plus]
    .venv/bin/python launch/build_mbpp_r.py --gin_file=gin/data/mbpp_r_sampled.gin \
        --gin_param="sampled_solutions.hf_checkpoint='/path/to/Qwen2.5-Coder-1.5B'" --out=out/data_sampled

Writes <out>/mbpp_r/{train,validation}.jsonl, <out>/mbpp_r/stats.json, the TFDS dataset under <out>/tfds, and,
with --hefix_plus, <out>/hefix_plus/test.jsonl; next to each, reference_times.json (each problem's reference
solution timed in the pool, for per-problem time limits: next_jax.data.time_limits). Traces of the failing
tests are precomputed in the sandbox into <out>/trace_cache/pool.jsonl so the SeqIO tasks start warm. All
choices come from gin (see gin/data/); the sampled build's gin file imports the model-side sampler itself, so a
mutation build never loads jax.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
from pathlib import Path

import gin

from next_jax.data import mbpp_r
from next_jax.data.example import write_examples
from next_jax.data.hefix_plus import build_hefix_plus
from next_jax.data.prompts import call_of_test, pool_tracer
from next_jax.data.readers import default_data_dir, read_evalplus, read_humanevalfix, read_mbpp
from next_jax.data.tfds_mbpp_r import MbppR, build_tfds
from next_jax.data.time_limits import CACHE_NAME, measure_reference_times
from next_jax.data.trace_cache import TraceCache
from next_jax.execution.pool import VerificationPool

REPO = Path(__file__).resolve().parents[1]

gin.external_configurable(mbpp_r.MutatedBugs, module="mbpp_r")
gin.external_configurable(mbpp_r.SampledBugs, module="mbpp_r")
gin.external_configurable(mbpp_r.mbpp_shots, module="mbpp_r")


@gin.configurable("mbpp_r_build")
def build(
    bug_source=gin.REQUIRED,
    splits=None,
    cap_per_problem: int = 30,
    workers: int = 2,
    timeout: float = 10.0,
    trace_budgets=None,
    num_visible: int = 3,
    max_plus_inputs=None,
):
    """Gin-bound build settings; returned as a dict for main()."""
    return {k: v for k, v in locals().items()}


def _warm_traces(cache: TraceCache, examples) -> None:
    for ex in examples:
        for i in ex.failing_tests:
            call = call_of_test(ex.tests[i], ex.entry_point)
            if call is not None:
                cache(ex.buggy_code, call)


def _default_shots_path(path: Path) -> None:
    """Few-shot MBPP problems come from --data unless a gin file says where."""
    try:
        bound = gin.query_parameter("mbpp_shots.path")
    except ValueError:
        bound = None
    if bound is None:
        with gin.unlock_config():
            gin.bind_parameter("mbpp_shots.path", str(path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gin_file", action="append", default=[])
    ap.add_argument("--gin_param", action="append", default=[])
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", default=str(default_data_dir()), help="directory of the public data files")
    ap.add_argument("--hefix_plus", action="store_true", help="also build HeFix+")
    ap.add_argument("--skip_mbpp_r", action="store_true", help="build only what the other flags ask for")
    ap.add_argument("--no_traces", action="store_true", help="skip precomputing traces")
    ap.add_argument("--no_time_limits", action="store_true",
                    help="skip measuring the reference solutions' times (<dataset>/reference_times.json)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    gin.add_config_file_search_path(str(REPO))  # gin files include each other by repo-relative path
    gin.parse_config_files_and_bindings(args.gin_file, args.gin_param)
    out, data = Path(args.out), Path(args.data)
    _default_shots_path(data / "mbpp" / "mbpp.jsonl")
    cfg = build()
    problems = read_mbpp(data / "mbpp" / "mbpp.jsonl").records
    budgets = dict(cfg["trace_budgets"] or {})
    stats: dict = {}
    with VerificationPool(workers=cfg["workers"], timeout=cfg["timeout"]) as pool:
        cache = TraceCache(pool_tracer(pool, **budgets), budgets, out / "trace_cache" / "pool.jsonl")
        if not args.skip_mbpp_r:
            built = mbpp_r.build_mbpp_r(
                problems,
                cfg["bug_source"],
                pool,
                splits=cfg["splits"] or mbpp_r.DEFAULT_SPLITS,
                cap_per_problem=cfg["cap_per_problem"],
            )
            for name, examples in built.splits.items():
                write_examples(out / "mbpp_r" / f"{name}.jsonl", examples)
            if not args.no_time_limits:
                examples = [e for split in built.splits.values() for e in split]
                measure_reference_times(pool, examples, out / "mbpp_r" / CACHE_NAME)
            stats = {
                "version": str(MbppR.VERSION),
                "gin": gin.operative_config_str(),
                **mbpp_r.statistics(built),
            }
            (out / "mbpp_r" / "stats.json").write_text(json.dumps(stats, indent=2))
            if any(built.splits.values()):
                build_tfds(out / "mbpp_r", out / "tfds")
            else:
                logging.warning("MBPP-R kept no examples (see 'dropped' in stats.json): no TFDS dataset")
            if not args.no_traces:
                for examples in built.splits.values():
                    _warm_traces(cache, examples)
        if args.hefix_plus:
            hefix = build_hefix_plus(
                read_humanevalfix(data / "humanevalfix" / "humanevalpack.jsonl").records,
                read_evalplus(data / "evalplus" / "HumanEvalPlus.jsonl.gz").records,
                pool,
                num_visible=cfg["num_visible"],
                max_plus_inputs=cfg["max_plus_inputs"],
            )
            write_examples(out / "hefix_plus" / "test.jsonl", hefix)
            if not args.no_time_limits:
                measure_reference_times(pool, hefix, out / "hefix_plus" / CACHE_NAME)
            stats["hefix_plus"] = {
                "examples": len(hefix),
                "hidden_tests": sum(len(e.hidden_tests) for e in hefix),
                "failure_types": dict(collections.Counter(e.failure_type for e in hefix).most_common()),
            }
            if not args.no_traces:
                _warm_traces(cache, hefix)
    print(json.dumps({k: v for k, v in stats.items() if k != "gin"}, indent=2))


if __name__ == "__main__":
    main()
