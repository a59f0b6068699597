"""SeqIO postprocessing and metrics for repair tasks: fix rate through the verification pool, and pass@k.

Targets are post-processed into the example's verification record (id, entry point, hidden tests, setup);
predictions stay text and are parsed here, so a parse failure counts as a failed sample with its own status.
Several predictions for one example id (the task repeated for sampling) give pass@k for k up to that count.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Mapping, Sequence
from typing import Any

import gin

from next_jax.data.metrics import fix_rate, mean_pass_at_k
from next_jax.data.parsing import parse_completion
from next_jax.execution.verdict import Candidate


def _text(x: Any) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def postprocess(output: Any, example: Mapping[str, Any] | None = None, is_target: bool = False) -> Any:
    """Targets -> {"id", entry_point, tests, setup}; predictions -> the completion text."""
    if is_target and example is not None:
        meta = json.loads(_text(example["meta"]))
        return {"id": _text(example["id"]), **meta}
    return _text(output)


def verify_predictions(
    targets: Sequence[Mapping[str, Any]], predictions: Sequence[str], pool: Any
) -> tuple[dict[str, list[bool]], collections.Counter[str]]:
    """Per example id, whether each prediction's fix passes; and the count of each verdict/parse status."""
    outcomes: dict[str, list[bool]] = collections.defaultdict(list)
    statuses: collections.Counter[str] = collections.Counter()
    jobs = []
    for i, (t, p) in enumerate(zip(targets, predictions, strict=True)):
        parsed = parse_completion(p, t["entry_point"])
        if parsed.ok:
            jobs.append(
                (t["id"], Candidate(f"{t['id']}#{i}", parsed.code, tuple(t["tests"]), t.get("setup", "")))
            )
        else:
            outcomes[t["id"]].append(False)
            statuses[parsed.status] += 1
    verdicts = pool.verify([c for _, c in jobs]) if jobs else []
    for (ident, _), v in zip(jobs, verdicts, strict=True):
        outcomes[ident].append(v.ok)
        statuses[v.status] += 1
    return dict(outcomes), statuses


@gin.configurable
def repair_metrics(
    targets: Sequence[Mapping[str, Any]],
    predictions: Sequence[str],
    ks: Sequence[int] = (1, 5, 10, 25),
    pool: Any = None,
) -> dict[str, float]:
    """fix_rate, pass@k for each k not above the smallest per-example sample count, and status shares."""
    if pool is None:
        from tasks.sources import repair_data_config, shared_pool

        config = repair_data_config()
        pool = shared_pool(config.pool_workers, config.pool_timeout)
    outcomes, statuses = verify_predictions(targets, predictions, pool)
    out = {"fix_rate": fix_rate(outcomes)}
    out.update({f"pass@{k}": v for k, v in mean_pass_at_k(outcomes, ks).items()})
    total = max(1, sum(statuses.values()))
    out.update({f"status/{s}": n / total for s, n in sorted(statuses.items())})
    return out
