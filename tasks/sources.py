"""SeqIO data sources that turn repair examples into NExT prompts (with traces) and targets.

Prompts are rendered in Python (tracing cannot run inside a TF graph) through `tf.data.Dataset.from_generator`,
by `next_jax.data.rendering.PromptRenderer`: the same renderer the self-training loop samples and evaluates
with. Its trace caches persist under the data root, so a second epoch, another trace format or another run
reuses them. This module holds the gin settings (`repair_data_config`) and the SeqIO wiring.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import gin
import seqio
import tensorflow as tf

from next_jax.data.example import RepairExample, iter_jsonl, read_examples
from next_jax.data.prompts import byte_length
from next_jax.data.rendering import PromptRenderer, RepairDataConfig
from next_jax.data.synthetic import generate_synthetic
from tasks.vocabularies import get_vocabulary


def _default_root() -> str:
    return os.environ.get("NEXT_JAX_REPAIR_DATA", str(Path(__file__).resolve().parents[1] / "out" / "data"))


@gin.configurable
def repair_data_config(
    root: str | None = None,
    trace_cache_dir: str | None = None,
    prompt_budget: int = 2048,
    max_traced_tests: int = 3,
    few_shot: bool = False,
    untrusted_tracer: str = "pool",
    max_events: int = 10_000,
    max_bytes: int = 200_000,
    max_repr: int = 200,
    pool_workers: int = 2,
    pool_timeout: float = 10.0,
    synthetic_seed: int = 0,
    synthetic_train_size: int = 2000,
    synthetic_validation_size: int = 200,
    instruction: bool = True,
    max_failing_shown: int = 0,
    layout: str = "markdown",
    answer: str = "program",
) -> RepairDataConfig:
    """Gin-configurable settings of the repair tasks.

    root: built datasets (`<root>/mbpp_r/{train,validation}.jsonl`, `<root>/hefix_plus/test.jsonl`); default
    `$NEXT_JAX_REPAIR_DATA` or `<repo>/out/data`. trace_cache_dir: persistent trace caches (default
    `<root>/trace_cache`; "" for memory only). untrusted_tracer: "pool" or "in_process". max_failing_shown:
    list at most that many failing tests, traced ones first (0: all). layout: "markdown" or "compact".
    answer: the target's fix, "program" (the whole fixed program) or "edits" (`Fix:` line edits of the buggy
    program where the fix is one, the program otherwise; `next_jax/data/edits.py`).
    """
    if untrusted_tracer not in ("pool", "in_process"):
        raise ValueError(f"untrusted_tracer must be 'pool' or 'in_process', got {untrusted_tracer!r}")
    root = root or _default_root()
    cache = str(Path(root) / "trace_cache") if trace_cache_dir is None else (trace_cache_dir or None)
    return RepairDataConfig(
        root=root,
        trace_cache_dir=cache,
        prompt_budget=prompt_budget,
        max_traced_tests=max_traced_tests,
        few_shot=few_shot,
        untrusted_tracer=untrusted_tracer,
        budgets=(("max_events", max_events), ("max_bytes", max_bytes), ("max_repr", max_repr)),
        pool_workers=pool_workers,
        pool_timeout=pool_timeout,
        synthetic_seed=synthetic_seed,
        synthetic_sizes=(("train", synthetic_train_size), ("validation", synthetic_validation_size)),
        instruction=instruction,
        max_failing_shown=max_failing_shown,
        layout=layout,
        answer=answer,
    )


def example_features(
    ex: RepairExample, fmt: str, config: RepairDataConfig, trusted: bool, count_tokens: Callable[[str], int]
) -> dict[str, str]:
    """The string features of one example (see `PromptRenderer.features`)."""
    return PromptRenderer(config, count_tokens).features(ex, fmt, trusted)


def token_counter(vocab: seqio.Vocabulary) -> Callable[[str], int]:
    """Prompt length in tokens of `vocab` (bytes for the byte vocabulary, without encoding)."""
    if isinstance(vocab, seqio.ByteVocabulary):
        return byte_length
    return lambda s: len(vocab.encode(s))


FEATURE_SIGNATURE = {k: tf.TensorSpec((), tf.string) for k in ("id", "inputs", "targets", "meta")}


def repair_source(
    load: Callable[[str], Iterable[RepairExample]], splits: Iterable[str], fmt: str, trusted: bool
) -> seqio.FunctionDataSource:
    """A SeqIO source rendering the examples `load(split)` returns as prompts in trace format `fmt`."""

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
        del shuffle_files, seed  # one file per split; the task's shuffle buffer shuffles examples

        def gen() -> Iterator[dict[str, str]]:
            renderer = PromptRenderer(repair_data_config(), token_counter(get_vocabulary()))
            for ex in load(split):
                yield renderer.features(ex, fmt, trusted)

        return tf.data.Dataset.from_generator(gen, output_signature=FEATURE_SIGNATURE)

    return seqio.FunctionDataSource(dataset_fn, splits=list(splits), caching_permitted=False)


def built_examples(dataset: str) -> Callable[[str], list[RepairExample]]:
    """Loader of a built dataset's split JSONL under the configured root."""

    def load(split: str) -> list[RepairExample]:
        path = Path(repair_data_config().root) / dataset / f"{split}.jsonl"
        if not path.exists():
            raise FileNotFoundError(
                f"{path} not found: build it with launch/build_mbpp_r.py "
                "or point repair_data_config.root / $NEXT_JAX_REPAIR_DATA at it"
            )
        return read_examples(path)

    return load


@functools.cache
def _synthetic(split: str, size: int, seed: int) -> tuple[RepairExample, ...]:
    return tuple(generate_synthetic(size, split, seed))


def synthetic_examples(split: str) -> tuple[RepairExample, ...]:
    """The gin-sized synthetic split (generated once per process)."""
    config = repair_data_config()
    return _synthetic(split, dict(config.synthetic_sizes)[split], config.synthetic_seed)


def kept_source(paths: Callable[[], list[str]]) -> seqio.FunctionDataSource:
    """A source over self-training output: JSON lines with "prompt" and "target" (or "completion").

    `paths()` is called when the dataset is built, so a task can be registered before the files exist.
    """

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
        del split, shuffle_files, seed

        def gen() -> Iterator[dict[str, str]]:
            for path in paths():
                for i, rec in enumerate(iter_jsonl(path)):
                    target = rec.get("target", rec.get("completion"))
                    if not isinstance(rec.get("prompt"), str) or not isinstance(target, str):
                        raise ValueError(f"{path}: record {i + 1} needs string 'prompt' and 'target'")
                    yield {
                        "id": str(rec.get("id", f"{path}:{i}")),
                        "inputs": rec["prompt"],
                        "targets": target,
                        "meta": json.dumps(rec.get("meta", {})),
                    }

        return tf.data.Dataset.from_generator(gen, output_signature=FEATURE_SIGNATURE)

    return seqio.FunctionDataSource(dataset_fn, splits=["train"], caching_permitted=False)
