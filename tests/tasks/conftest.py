"""Fixtures of the SeqIO task tests: a tiny built MBPP-R / HeFix+ under a temporary data root, and gin."""

from __future__ import annotations

from pathlib import Path

import gin
import pytest

from next_jax.data import mbpp_r, readers
from next_jax.data.example import write_examples
from next_jax.data.hefix_plus import build_hefix_plus

MBPP_IDS = {601, 602, 603, 511, 512}


@pytest.fixture(scope="session")
def repair_root(tmp_path_factory) -> Path:
    data = readers.default_data_dir()
    if not (data / "mbpp" / "mbpp.jsonl").exists():
        pytest.skip(f"public data not found under {data} (set NEXT_JAX_DATA)")
    from next_jax.execution.pool import VerificationPool

    root = tmp_path_factory.mktemp("repair_data")
    problems = [p for p in readers.read_mbpp(data / "mbpp" / "mbpp.jsonl").records if p.task_id in MBPP_IDS]
    fix = readers.read_humanevalfix(data / "humanevalfix" / "humanevalpack.jsonl").records[:3]
    plus = readers.read_evalplus(data / "evalplus" / "HumanEvalPlus.jsonl.gz").records[:3]
    with VerificationPool(workers=2, timeout=5.0) as pool:
        built = mbpp_r.build_mbpp_r(
            problems, mbpp_r.MutatedBugs(per_problem=6, seed=0), pool, cap_per_problem=2
        )
        hefix = build_hefix_plus(fix, plus, pool, max_plus_inputs=2)
    for name, exs in built.splits.items():
        write_examples(root / "mbpp_r" / f"{name}.jsonl", exs)
    write_examples(root / "hefix_plus" / "test.jsonl", hefix)
    return root


@pytest.fixture(autouse=True)
def repair_gin(repair_root):
    """Point the tasks at the tiny data root with small synthetic splits; reset after each test."""
    import tasks  # noqa: F401  (registers the tasks and their gin configurables)

    bindings = [
        f"repair_data_config.root = '{repair_root}'",
        "repair_data_config.trace_cache_dir = ''",
        "repair_data_config.synthetic_train_size = 6",
        "repair_data_config.synthetic_validation_size = 3",
        "repair_data_config.pool_timeout = 5.0",
    ]
    gin.clear_config()
    gin.parse_config(bindings)
    yield bindings
    gin.clear_config()
