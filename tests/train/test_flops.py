"""FLOP accounting and the measured matmul ceiling."""

import jax.numpy as jnp
import pytest
from flax import nnx

from next_jax.models.decoder import Decoder
from next_jax.train.flops import count_params, decoder_flops, matmul_param_count, measure_matmul_flops, mfu


def test_matmul_params_exclude_the_input_embedding_unless_tied():
    assert matmul_param_count(1000, vocab_size=10, embed_dim=8, tied_embeddings=False) == 920
    assert matmul_param_count(1000, vocab_size=10, embed_dim=8, tied_embeddings=True) == 1000


def test_palm_formula():
    counts = decoder_flops(matmul_params=100, num_layers=2, num_heads=3, head_dim=4, seq_len=5)
    # forward: 2N + 4 * L * H * Q * T; training: 3x forward (= 6N + 12 LHQT).
    assert counts.forward_per_token == 2 * 100 + 4 * 2 * 3 * 4 * 5
    assert counts.train_per_token == 6 * 100 + 12 * 2 * 3 * 4 * 5


def test_count_params_of_an_untied_decoder_matches_hand_count(tiny_config):
    model = Decoder(tiny_config, rngs=nnx.Rngs(0))
    c = tiny_config
    attn = c.embed_dim * c.head_dim * (2 * c.num_heads + 2 * c.num_kv_heads)
    mlp = 3 * c.embed_dim * c.mlp_dim
    per_layer = attn + mlp + 2 * c.embed_dim  # two RMSNorm scales
    expected = c.num_layers * per_layer + 2 * c.vocab_size * c.embed_dim + c.embed_dim
    assert count_params(nnx.state(model, nnx.Param)) == expected


def test_measured_matmul_ceiling_is_plausible():
    flops = measure_matmul_flops(dim=256, dtype=jnp.float32, repeats=2)
    assert 1e8 < flops < 1e14  # between 0.1 GFLOP/s and 100 TFLOP/s on any host this runs on
    assert mfu(0.5 * flops, flops) == pytest.approx(0.5)
