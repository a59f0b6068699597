"""Gin-configurable settings of a self-training run (defaults follow the paper where it says)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import gin


@gin.configurable(module="next_jax.selftrain")
@dataclasses.dataclass(frozen=True)
class BaseModelSettings:
    """The model iteration 0 samples from: an HF checkpoint folder, or a preset initialised with the run's
    seed and pretrained for `pretrain_steps` on the problem set's corpus plus its seed demonstrations."""

    hf_checkpoint: str | None = None
    vocabulary_from_checkpoint: bool = True  # else gin's `get_vocabulary()`
    preset: str | None = None
    preset_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    pretrain_steps: int = 0
    pretrain_batch_size: int = 16
    # The seed demonstrations are few beside the corpus: repeating them teaches the repair format (copy the
    # program, change the faulty line) before the first sample, without which iteration 0 keeps nothing.
    seed_repeats: int = 1
    # Pretraining loss on the prompt tokens too (a language model's loss on the whole text), not only on the
    # answers: prompts are most of the corpus's bytes (descriptions, traced programs), so the same steps give
    # several times the training signal. Fine-tunes always learn the answers only. Off for the embedded default:
    # in 450 steps the ~1M-parameter model spent itself on the traces' numbers (base dev fix rate 12-14% -> 4-5%).
    loss_on_prompt: bool = False
    dtype: str | None = None  # None: the preset's / checkpoint's
    length_buckets: tuple[int, ...] = (256, 512, 1024, 2048)


@gin.configurable(module="next_jax.selftrain")
@dataclasses.dataclass(frozen=True)
class SampleSettings:
    """The sample stage: `num_samples` rationale+fix completions per problem."""

    num_samples: int = 32
    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 0.95
    max_new_tokens: int = 512
    shard_size: int = 64
    rows_per_call: int = 256
    queue_size: int = 2


@gin.configurable(module="next_jax.selftrain")
@dataclasses.dataclass(frozen=True)
class HardSubsetSettings:
    """Paper: keep training problems whose pass@1 under the base model, from `num_samples` samples, is
    below `threshold`."""

    enabled: bool = False
    num_samples: int = 32
    threshold: float = 0.1


@gin.configurable(module="next_jax.selftrain")
@dataclasses.dataclass(frozen=True)
class FinetuneSettings:
    """The fine-tune stage: `steps` optimizer steps of `batch_size` packed rows, from the base model
    (paper, STaR) or from the previous iteration; the problem set's seed demonstrations are added to the
    kept samples when `include_seed`. The control trains on the seed set alone with the same steps and rate.
    `peak_learning_rate` (with `Trainer.schedule_per_run`; None: the gin schedule's peak) sets the peak of
    these fine-tunes alone, the pretraining keeping the schedule's."""

    steps: int = 200
    batch_size: int = 16
    from_base: bool = True
    include_seed: bool = True
    peak_learning_rate: float | None = None
