"""Model-sampled MBPP solutions for MBPP-R: the `CompletionSampler` that `mbpp_r.SampledBugs` is given.

`next_jax.data` imports no jax, so the MBPP-R builder takes its sampler injected; this module is the
`next_jax.decode.Sampler`-backed one (text in, text out through a seqio vocabulary), and `sampled_solutions`
builds it from gin: a Hugging Face checkpoint folder, or a model preset with optional orbax parameters (or,
for smoke tests, random weights). See `gin/data/mbpp_r_sampled.gin`.
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
from next_jax.train.checkpoints import restore_params

log = logging.getLogger(__name__)


class SamplerCompletions:
    """`generate(prompts, n)`: `n` decoded completions of each prompt, sampled by a `Sampler`.

    Prompts longer than `max_prompt_tokens` keep their end (the task and the open code fence) and lose
    their start (few-shot examples), and are logged. Prompts go to the sampler `prompts_per_call` at a
    time; call i uses seed `seed + i`, so results are reproducible for a seed.
    """

    def __init__(
        self,
        sampler: Sampler,
        vocabulary: Any,
        *,
        max_new_tokens: int = 512,
        temperature: float = 0.8,
        top_k: int = 0,
        top_p: float = 0.95,
        seed: int = 0,
        prompts_per_call: int = 8,
        max_prompt_tokens: int = 2048,
    ) -> None:
        self.sampler = sampler
        self.vocabulary = vocabulary
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self.seed = seed
        self.prompts_per_call = prompts_per_call
        self.max_prompt_tokens = max_prompt_tokens

    def _encode(self, prompt: str) -> list[int]:
        ids = list(self.vocabulary.encode(prompt))
        if len(ids) > self.max_prompt_tokens:
            log.warning("prompt of %d tokens cut to its last %d", len(ids), self.max_prompt_tokens)
            ids = ids[-self.max_prompt_tokens :]
        return ids

    def _decode(self, tokens: Sequence[int]) -> str:
        eos = set(self.sampler.eos_ids)
        cut = next((i for i, t in enumerate(tokens) if t in eos), len(tokens))
        return self.vocabulary.decode([int(t) for t in tokens[:cut]])

    def generate(self, prompts: list[str], num_samples: int) -> list[list[str]]:
        out: list[list[str]] = []
        for call, start in enumerate(range(0, len(prompts), self.prompts_per_call)):
            chunk = [self._encode(p) for p in prompts[start : start + self.prompts_per_call]]
            result = self.sampler.sample(
                chunk,
                num_samples=num_samples,
                max_new_tokens=self.max_new_tokens,
                temperature=self.temperature,
                top_k=self.top_k,
                top_p=self.top_p,
                seed=self.seed + call,
            )
            out += [[self._decode(s) for s in rows] for rows in result.completions()]
            log.info("sampled solutions for %d / %d prompts", len(out), len(prompts))
        return out


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
) -> SamplerCompletions:
    """A `SamplerCompletions` over a checkpoint: `hf_checkpoint` (a local HF folder, its tokenizer the
    default vocabulary) or `preset` (+ `params_checkpoint` written by `save_params`; none: random init).

    `vocabulary` (a seqio vocabulary) must fit the model's embedding table; `generate_kwargs` go to
    `SamplerCompletions` (max_new_tokens, temperature, top_k, top_p, seed, prompts_per_call, ...).
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
    return SamplerCompletions(sampler, vocab, **generate_kwargs)
