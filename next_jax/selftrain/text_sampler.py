"""`TextSampler`: text prompts in, decoded completions out, through a `decode.Sampler` and a seqio vocabulary.

The MBPP-R builder (`data.mbpp_r.SampledBugs`) takes one injected as its `CompletionSampler`: `next_jax.data`
imports no jax, so the jax-backed implementation lives here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from next_jax.decode.sampler import Sampler

log = logging.getLogger(__name__)


class TextSampler:
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
