"""A SeqIO task over the kept (prompt, rationale+fix) pairs of a self-training iteration.

The self-training loop writes `RUN/iter_K/kept.jsonl` (one JSON object per line with "prompt" and "target",
the latter being the sampled rationale and fixed program); fine-tuning then reads it like any other task.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

import seqio

from tasks.repair import PREPROCESSORS
from tasks.repair_metrics import postprocess
from tasks.sources import kept_source
from tasks.vocabularies import output_features


def register_kept_task(
    name: str,
    paths: Sequence[str | Path] | str,
    vocabulary: seqio.Vocabulary | None = None,
    shuffle_buffer_size: int = seqio.SHUFFLE_BUFFER_SIZE,
) -> seqio.Task:
    """Register (or replace) task `name` over kept JSONL files: a list of paths or one glob pattern.

    The files are read in order, so a buffer smaller than their records leaves later files (the seed set after
    the corpus) out of the first batches: callers that know the record count pass it as `shuffle_buffer_size`.
    """

    def resolve() -> list[str]:
        files = sorted(glob.glob(paths)) if isinstance(paths, str) else [str(p) for p in paths]
        if not files:
            raise FileNotFoundError(f"no kept JSONL files for task {name}: {paths}")
        return files

    if name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(name)
    return seqio.TaskRegistry.add(
        name,
        source=kept_source(resolve),
        output_features=output_features(vocabulary),
        preprocessors=PREPROCESSORS,
        postprocess_fn=postprocess,
        shuffle_buffer_size=shuffle_buffer_size,
    )
