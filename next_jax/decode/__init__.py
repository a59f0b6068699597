"""Sampling completions from the decoder: KV-cache decoding, num_samples per prompt, top-k / top-p."""

from next_jax.decode.sampler import SampleOutput, Sampler, sampling_params
from next_jax.decode.sampling import choose_tokens, filter_logits

__all__ = ["SampleOutput", "Sampler", "choose_tokens", "filter_logits", "sampling_params"]
