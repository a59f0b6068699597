"""SeqIO postprocessing and metrics for repair tasks: fix rate through the verification pool, and pass@k.

Targets are post-processed into the example's verification record (id, entry point, hidden tests, setup);
predictions stay text and are parsed here, so a parse failure counts as a failed sample with its own status.
Several predictions for one example id (the task repeated for sampling) give pass@k for k up to that count.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import gin

from next_jax.data.fix_check import verify_predictions
from next_jax.data.pass_at_k import fix_rate, mean_pass_at_k


def _text(x: Any) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def postprocess(output: Any, example: Mapping[str, Any] | None = None, is_target: bool = False) -> Any:
    """Targets -> {"id", entry_point, tests, setup}; predictions -> the completion text."""
    if is_target and example is not None:
        meta = json.loads(_text(example["meta"]))
        return {"id": _text(example["id"]), **meta}
    return _text(output)


@gin.configurable
def repair_metrics(
    targets: Sequence[Mapping[str, Any]],
    predictions: Sequence[str],
    ks: Sequence[int] = (1, 5, 10, 25),
    pool: Any = None,
) -> dict[str, float]:
    """fix_rate, pass@k for each k not above the smallest per-example sample count, and status shares."""
    if pool is None:
        from next_jax.data.rendering import shared_pool
        from tasks.sources import repair_data_config

        config = repair_data_config()
        pool = shared_pool(config.pool_workers, config.pool_timeout)
    outcomes, statuses = verify_predictions(targets, predictions, pool)
    out = {"fix_rate": fix_rate(outcomes)}
    out.update({f"pass@{k}": v for k, v in mean_pass_at_k(outcomes, ks).items()})
    total = max(1, sum(statuses.values()))
    out.update({f"status/{s}": n / total for s, n in sorted(statuses.items())})
    return out
