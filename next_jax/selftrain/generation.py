"""The loop's decoder side: text prompts -> completions through `decode.Sampler` and a vocabulary.

Each prompt's random stream is `stable_id(example_id)` under the iteration's seed, so what is sampled for a
problem does not depend on which shard, batch or host it lands in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from next_jax.decode.sampler import Sampler
from next_jax.selftrain.records import stable_id
from next_jax.selftrain.sample_verify import Problem


class SamplerGenerate:
    """A `sample_verify.Generate` over a `Sampler`; `rows_per_call` bounds prompts x samples per call."""

    def __init__(
        self,
        sampler: Sampler,
        vocabulary: Any,
        *,
        seed: int,
        max_new_tokens: int,
        temperature: float,
        top_k: int = 0,
        top_p: float = 1.0,
        rows_per_call: int = 256,
        max_prompt_tokens: int | None = None,
    ) -> None:
        self.sampler, self.vocabulary, self.seed = sampler, vocabulary, seed
        self.max_new_tokens, self.temperature, self.top_k, self.top_p = max_new_tokens, temperature, top_k, top_p
        self.rows_per_call = rows_per_call
        self.max_prompt_tokens = max_prompt_tokens
        self.truncated_prompts = 0

    def _encode(self, text: str) -> list[int]:
        ids = list(self.vocabulary.encode(text))
        if self.max_prompt_tokens and len(ids) > self.max_prompt_tokens:
            self.truncated_prompts += 1
            ids = ids[-self.max_prompt_tokens :]  # keep the end: the failing code and the answer header
        return ids

    def _decode(self, tokens: np.ndarray) -> str:
        eos = set(self.sampler.eos_ids)
        ids = [int(t) for t in tokens]
        cut = next((i for i, t in enumerate(ids) if t in eos), len(ids))
        return self.vocabulary.decode(ids[:cut])

    def __call__(self, problems: Sequence[Problem], num_samples: int) -> list[list[tuple[str, float]]]:
        per_call = max(1, self.rows_per_call // max(1, num_samples))
        out: list[list[tuple[str, float]]] = []
        for start in range(0, len(problems), per_call):
            chunk = problems[start : start + per_call]
            result = self.sampler.sample(
                [self._encode(p.prompt) for p in chunk],
                num_samples=num_samples,
                max_new_tokens=self.max_new_tokens,
                temperature=self.temperature,
                top_k=self.top_k,
                top_p=self.top_p,
                seed=self.seed,
                prompt_ids=[stable_id(p.example_id) for p in chunk],
            )
            totals = result.total_logprobs()
            for b in range(len(chunk)):
                out.append([
                    (self._decode(result.tokens[b, s, : result.lengths[b, s]]), float(totals[b, s]))
                    for s in range(num_samples)
                ])
        return out
