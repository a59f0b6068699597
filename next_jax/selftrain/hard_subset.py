"""The `hard_subset` stage (paper: keep the training problems whose pass@1, estimated from the base model's
samples, is below a threshold; `HardSubsetSettings`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from next_jax.selftrain.sample_verify import read_joined, sample_and_verify, shards_of

if TYPE_CHECKING:
    from next_jax.selftrain.loop import Loop


def hard_subset_ids(loop: Loop) -> list[str]:
    """Ids of the training problems the base model rarely solves (pass@1 < threshold); all of them when the
    stage is off."""
    if not loop.hard.enabled:
        return [ex.id for ex in loop.problems.pool]

    def run() -> dict:
        loop.runtime.sample_with(loop.params("base"))
        problems, _ = loop.problems_for("pool", loop.problems.pool, loop.trace_format)
        out = loop.run.path("hard_subset")
        with loop.progress.bar("hard subset", len(problems)) as bar:
            sample_and_verify(shards_of(problems, loop.sample_settings.shard_size, loop.count), out, iteration=0,
                              generate=loop.train_generator("hard", 0), verify=loop.verify,
                              num_samples=loop.hard.num_samples, progress=bar, on_written=loop.on_written,
                              **loop.share)
        loop.exchange("hard_subset samples")
        passed: dict[str, list[bool]] = {}
        for s, v in read_joined(out):
            passed.setdefault(s.example_id, []).append(v["status"] == "pass")
        keep = sorted(i for i, flags in passed.items() if sum(flags) / len(flags) < loop.hard.threshold)
        return {"ids": keep, "problems": len(passed)}

    return loop.timed("hard_subset", run)["ids"]
