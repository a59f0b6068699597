"""`sampled_solutions`: the gin-built `TextSampler` that proposes MBPP solutions for MBPP-R's sampled bugs.

It loads a Hugging Face checkpoint folder, or a model preset with optional orbax parameters (or, for smoke
tests, random weights). See `gin/data/mbpp_r_sampled.gin`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import gin
import jax.numpy as jnp
from flax import nnx

from next_jax.decode.sampler import Sampler
from next_jax.models.hf import load_pretrained
from next_jax.models.registry import build_model, get_preset
from next_jax.selftrain.text_sampler import TextSampler
from next_jax.train.checkpoints import restore_params

log = logging.getLogger(__name__)


def _model_and_vocab(
    hf_checkpoint: str | None,
    preset: str | None,
    preset_overrides: Mapping[str, Any] | None,
    params_checkpoint: str | None,
    dtype: str,
    seed: int,
) -> tuple[nnx.Module, Any]:
    if hf_checkpoint:
        model, vocab = load_pretrained(hf_checkpoint, jnp.dtype(dtype))
        return model, vocab
    if not preset:
        raise ValueError("sampled_solutions needs hf_checkpoint or preset")
    model = build_model(get_preset(preset, **dict(preset_overrides or {})), seed=seed, dtype=jnp.dtype(dtype))
    if params_checkpoint:
        nnx.update(model, restore_params(params_checkpoint, nnx.state(model, nnx.Param)))
    else:
        log.warning("preset %s with random weights: its samples are noise (pipeline smoke test only)", preset)
    return model, None


@gin.configurable(module="next_jax.selftrain")
def sampled_solutions(
    hf_checkpoint: str | None = None,
    preset: str | None = None,
    preset_overrides: Mapping[str, Any] | None = None,
    params_checkpoint: str | None = None,
    vocabulary: Any = None,
    dtype: str = "bfloat16",
    init_seed: int = 0,
    length_buckets: Sequence[int] = (256, 512, 1024, 2048),
    **generate_kwargs: Any,
) -> TextSampler:
    """A `TextSampler` over a checkpoint: `hf_checkpoint` (a local HF folder, its tokenizer the
    default vocabulary) or `preset` (+ `params_checkpoint` written by `save_params`; none: random init).

    `vocabulary` (a seqio vocabulary) must fit the model's embedding table; `generate_kwargs` go to
    `TextSampler` (max_new_tokens, temperature, top_k, top_p, seed, prompts_per_call, ...).
    """
    model, vocab = _model_and_vocab(
        hf_checkpoint, preset, preset_overrides, params_checkpoint, dtype, init_seed
    )
    vocab = vocabulary if vocabulary is not None else vocab
    if vocab is None:
        raise ValueError("no vocabulary: bind sampled_solutions.vocabulary (the checkpoint has none)")
    if vocab.eos_id is None:
        raise ValueError("the vocabulary has no EOS id: sampling could not stop")
    if vocab.vocab_size > model.config.vocab_size:
        raise ValueError(
            f"vocabulary of {vocab.vocab_size} ids does not fit the model's {model.config.vocab_size} "
            "embeddings (for the byte vocabulary, bind preset_overrides = {'vocab_size': 259})"
        )
    pad = vocab.pad_id if vocab.pad_id is not None else 0
    sampler = Sampler(model, eos_id=vocab.eos_id, pad_id=pad, length_buckets=length_buckets)
    return TextSampler(sampler, vocab, **generate_kwargs)
