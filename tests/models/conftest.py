"""Tiny configs of every decoder family, shared by the model tests."""

from __future__ import annotations

import pytest

from next_jax.models.config import DecoderConfig

_BASE = dict(vocab_size=128, num_layers=2, embed_dim=32, num_heads=4, head_dim=8, mlp_dim=64, max_len=64)

# One tiny config per family, exercising what distinguishes it.
FAMILY_CONFIGS: dict[str, DecoderConfig] = {
    "palm": DecoderConfig(
        **_BASE,
        family="palm",
        num_kv_heads=1,
        parallel_block=True,
        norm="layer",
        tie_embeddings=True,
        scale_tied_logits=True,
    ),
    "llama": DecoderConfig(
        **_BASE,
        family="llama",
        num_kv_heads=2,
        rope_theta=500_000.0,
        rope_scaling="llama3",
        rope_scaling_factor=8.0,
        rope_original_max_len=16,
    ),
    "qwen2": DecoderConfig(
        **_BASE,
        family="qwen2",
        num_kv_heads=2,
        qkv_bias=True,
        rope_theta=1_000_000.0,
        tie_embeddings=True,
    ),
    "gemma": DecoderConfig(
        **{**_BASE, "head_dim": 16},
        family="gemma",
        num_kv_heads=1,
        activation="geglu",
        norm="rms_plus_one",
        embed_scale=True,
        tie_embeddings=True,
    ),
}


FAMILIES = sorted(FAMILY_CONFIGS)


@pytest.fixture(scope="session")
def family_configs() -> dict[str, DecoderConfig]:
    return FAMILY_CONFIGS


@pytest.fixture(scope="session")
def random_model():
    """`random_model(config, seed=0, **decoder_kwargs)`: see `make_random_model`."""
    return make_random_model


def make_random_model(config: DecoderConfig, seed: int = 0, scale: float = 0.2, **decoder_kwargs):
    """A `Decoder` whose every parameter is N(0, scale^2) noise drawn with numpy.

    Cheaper than running the real initialisers (no XLA compiles) and makes zero-initialised biases and
    (1 + w) norm scales matter.
    """
    import jax
    import numpy as np
    from flax import nnx

    from next_jax.models.decoder import Decoder

    abstract = nnx.eval_shape(lambda: Decoder(config, rngs=nnx.Rngs(0), **decoder_kwargs))
    graphdef, state = nnx.split(abstract)
    rng = np.random.RandomState(seed)
    state = jax.tree.map(lambda x: (scale * rng.standard_normal(x.shape)).astype(x.dtype), state)
    return nnx.merge(graphdef, state)
