"""Training batches for the fine-tune stages: a SeqIO task over prompt/target JSON lines, packed by seqio's
`DecoderFeatureConverter` (loss on targets only), shuffled with the run's seed, for a fixed number of steps.

Feature lengths are measured from the data and rounded up to multiples of 128 (few distinct shapes, so the
train step rarely recompiles), so no prompt is ever cut: seqio trims a feature from its end, which would cut
the `### Answer` line a prompt ends with.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import seqio

from next_jax.data.example import iter_jsonl
from tasks.selftrain import register_kept_task


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def feature_lengths(paths: Sequence[str | Path], vocabulary: seqio.Vocabulary, multiple: int = 128) -> dict[str, int]:
    """The smallest lengths (multiples of `multiple`) that hold every prompt and target (+EOS) of `paths`."""
    longest = {"inputs": 1, "targets": 1}
    for path in paths:
        for rec in iter_jsonl(path):
            longest["inputs"] = max(longest["inputs"], len(vocabulary.encode(rec["prompt"])))
            longest["targets"] = max(longest["targets"], len(vocabulary.encode(rec["target"])) + 1)
    return {k: _round_up(v, multiple) for k, v in longest.items()}


def count_records(paths: Sequence[str | Path]) -> int:
    return sum(1 for path in paths for _ in iter_jsonl(path))


def training_batches(
    task_name: str,
    paths: Sequence[str | Path],
    *,
    batch_size: int,
    num_steps: int,
    seed: int,
    vocabulary: seqio.Vocabulary,
    lengths: dict[str, int] | None = None,
    pack: bool = True,
    loss_on_prompt: bool = False,
) -> Iterator[dict[str, Any]]:
    """`num_steps` packed batches over the prompt/target records of `paths`, repeated and reshuffled each
    epoch (deterministic for a seed). Registers SeqIO task `task_name` over the files. The loss weights cover
    the targets only, or with `loss_on_prompt` the prompts too."""
    paths = [str(p) for p in paths]
    records = count_records(paths)
    if records == 0:
        raise ValueError(f"no training records in {paths}")
    # A buffer over every record: a uniform shuffle, so each batch mixes all files (records are small).
    register_kept_task(task_name, paths, vocabulary, shuffle_buffer_size=records)
    lengths = lengths or feature_lengths(paths, vocabulary)
    ds = seqio.get_dataset(
        task_name,
        task_feature_lengths=lengths,
        feature_converter=seqio.DecoderFeatureConverter(pack=pack, loss_on_targets_only=not loss_on_prompt),
        dataset_split="train",
        shuffle=True,
        num_epochs=None,
        seed=seed,
        batch_size=batch_size,
        verbose=False,
    )
    for batch in itertools.islice(ds.as_numpy_iterator(), num_steps):
        yield {k: np.asarray(v) for k, v in batch.items() if k != "decoder_causal_attention"}
