"""Shared tiny decoder and sampler for the sampler tests (compiled once per session)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from tiny_decoder import CONFIG, EOS, PAD

from next_jax.decode.sampler import Sampler
from next_jax.models.config import DecoderConfig
from next_jax.models.decoder import Decoder


@pytest.fixture(scope="session")
def tiny_config() -> DecoderConfig:
    return CONFIG


@pytest.fixture(scope="session")
def tiny_model(tiny_config) -> Decoder:
    return Decoder(tiny_config, rngs=nnx.Rngs(1))


@pytest.fixture(scope="session")
def sampler(tiny_model) -> Sampler:
    return Sampler(tiny_model, eos_id=EOS, pad_id=PAD, length_buckets=(8, 16, 32))


REFERENCE_LEN = 32


@pytest.fixture(scope="session")
def full_logits(tiny_model):
    """`full_logits(seq) -> [len(seq), V]`: one uncached forward pass (no KV cache), jitted once.

    Sequences are right-padded to a fixed length; the model is causal, so padding after the last token
    does not change the logits at real positions.
    """
    graphdef, state = nnx.split(tiny_model)
    forward = jax.jit(lambda state, tokens: nnx.merge(graphdef, state)(tokens))

    def run(seq: list[int]) -> np.ndarray:
        assert len(seq) <= REFERENCE_LEN
        tokens = np.zeros((1, REFERENCE_LEN), np.int32)
        tokens[0, : len(seq)] = seq
        return np.asarray(forward(state, jnp.asarray(tokens))[0, : len(seq)], np.float32)

    return run
