"""The evaluate stage: greedy fix rate (with its standard error) and unbiased pass@k from sampled
completions, on prompts with and without traces. Outputs live under `<dir>/<arm>_{greedy,sampled}/` in the
same resumable shard layout as training samples, so a killed evaluation resumes too. With several processes
each samples its share of the shards, and every one reads them all after a barrier."""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gin

from next_jax.data.pass_at_k import mean_pass_at_k
from next_jax.selftrain.sample_verify import Problem, read_joined, sample_and_verify, shards_of


@gin.configurable(module="next_jax.selftrain")
@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """`num_samples` sampled completions per problem for pass@k (0: greedy only) at `temperature`;
    `ks`: the k reported (those above `num_samples` are left out); `notrace`: also evaluate without traces."""

    num_samples: int = 4
    temperature: float = 0.8
    top_p: float = 0.95
    ks: tuple[int, ...] = (1, 4, 10, 32)
    max_new_tokens: int = 256
    shard_size: int = 64
    notrace: bool = True


def outcomes_of(joined: Sequence[tuple[Any, dict[str, Any]]]) -> dict[str, list[bool]]:
    """Per problem, whether each of its samples passed (`joined` from `read_joined`)."""
    per_problem: dict[str, list[bool]] = collections.defaultdict(list)
    for s, v in joined:
        per_problem[s.example_id].append(v["status"] == "pass")
    return dict(per_problem)


def greedy_summary(outcomes: dict[str, list[bool]]) -> tuple[float, float]:
    """Fix rate over problems (one greedy sample each) and its standard error."""
    n = len(outcomes)
    if n == 0:
        return 0.0, 0.0
    p = sum(any(v) for v in outcomes.values()) / n
    return p, math.sqrt(p * (1 - p) / n)


def evaluate_arm(
    problems: Sequence[Problem],
    out_dir: Path,
    *,
    settings: EvalSettings,
    make_generate: Callable[[float, str], Any],
    verify: Callable,
    length: Callable[[str], int],
    trace_share: float,
    progress: Callable[[int], None] | None = None,
    process_index: int = 0,
    process_count: int = 1,
    wait: Callable[[], None] = lambda: None,
    on_written: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """EVAL of one model on one prompt arm: {"problems", "greedy_fix_rate", "greedy_fix_rate_stderr",
    "pass_at_k", "statuses", "trace_share"}. `make_generate(temperature, purpose)` gives a sampler.
    `wait()` returns once every process has written its shards (a barrier); `on_written(path)` is called with
    each shard file written."""
    shards = shards_of(problems, settings.shard_size, length)
    share = dict(process_index=process_index, process_count=process_count, on_written=on_written)
    sample_and_verify(shards, out_dir / "greedy", iteration=0, generate=make_generate(0.0, "greedy"),
                      verify=verify, num_samples=1, progress=progress, **share)
    if settings.num_samples > 0:
        sample_and_verify(shards, out_dir / "sampled", iteration=0,
                          generate=make_generate(settings.temperature, "eval"), verify=verify,
                          num_samples=settings.num_samples, progress=progress, **share)
    wait()
    joined = read_joined(out_dir / "greedy")
    rate, stderr = greedy_summary(outcomes_of(joined))
    statuses = collections.Counter(v["status"] for _, v in joined)
    result: dict[str, Any] = {
        "problems": len(problems),
        "greedy_fix_rate": rate,
        "greedy_fix_rate_stderr": stderr,
        "greedy_statuses": dict(sorted(statuses.items())),
        "trace_share": trace_share,
        "pass_at_k": {},
    }
    if settings.num_samples > 0:
        ks = sorted({1, *settings.ks})
        result["pass_at_k"] = {str(k): v for k, v in mean_pass_at_k(outcomes_of(read_joined(out_dir / "sampled")), ks).items()}
    return result
