"""Builds the run's `ModelRuntime` from gin: the base model (HF checkpoint or seeded preset) and its
vocabulary (the checkpoint's own tokenizer, or the gin-selected SeqIO vocabulary). The loop hands that one
vocabulary to its prompt renderer, sampler and SeqIO training task alike."""

from __future__ import annotations

import jax.numpy as jnp

from next_jax.models.hf import load_pretrained
from next_jax.models.registry import build_model, get_preset
from next_jax.selftrain.runtime import ModelRuntime
from next_jax.selftrain.settings import BaseModelSettings
from tasks.vocabularies import get_vocabulary


def build_runtime(*, seed: int, show_progress: bool = True) -> ModelRuntime:
    settings = BaseModelSettings()
    vocab = get_vocabulary()
    dtype = jnp.dtype(settings.dtype) if settings.dtype else None
    if settings.hf_checkpoint:
        model, own_vocab = load_pretrained(settings.hf_checkpoint, dtype or jnp.float32,
                                           with_vocab=settings.vocabulary_from_checkpoint)
        if settings.vocabulary_from_checkpoint:
            if own_vocab is None:
                raise FileNotFoundError(f"{settings.hf_checkpoint} has no tokenizer.json or tokenizer.model")
            vocab = own_vocab
    elif settings.preset:
        model = build_model(get_preset(settings.preset, **dict(settings.preset_overrides)), seed=seed, dtype=dtype)
    else:
        raise ValueError("BaseModelSettings needs hf_checkpoint or preset")
    if vocab.vocab_size > model.config.vocab_size:
        raise ValueError(
            f"the vocabulary has {vocab.vocab_size} ids but the model only {model.config.vocab_size} embeddings"
        )
    if vocab.eos_id is None:
        raise ValueError("the vocabulary has no EOS id: sampling could not stop")
    return ModelRuntime(model, vocab, length_buckets=tuple(settings.length_buckets), show_progress=show_progress)
