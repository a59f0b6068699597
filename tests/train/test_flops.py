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


def test_expected_train_flops_with_full_remat_match_the_compilers_count():
    """The formula plus what remat recomputes (the layers' forward work, less the output matmuls whose
    results only feed the residual sum: the MLP's down projection, and in a parallel block the attention's
    output projection too) agrees with XLA's own count of a compiled train step."""
    import optax

    from next_jax.models import registry
    from next_jax.models.config import DecoderConfig
    from next_jax.models.mesh import create_mesh
    from next_jax.train import step_builder
    from next_jax.train.flops import train_step_flops

    mesh = create_mesh()
    counts = {}
    for parallel_block in (False, True):
        config = DecoderConfig(vocab_size=256, num_layers=2, embed_dim=128, num_heads=4, num_kv_heads=1,
                               head_dim=32, mlp_dim=512, parallel_block=parallel_block, tie_embeddings=True,
                               remat=True, remat_policy="nothing_saveable", attention_impl="xla")
        parts = step_builder.build_step(registry.abstract_model(config), mesh, optax.sgd(1e-3), z_loss=0.0)
        batch = step_builder.abstract_batch(step_builder.batch_shapes(4, 64), mesh)
        cost = step_builder.lower_step(parts, batch).compile().cost_analysis()
        compiled = float((cost[0] if isinstance(cost, list) else cost)["flops"])
        model_flops, expected = train_step_flops(config, count_params(parts.abstract_state.params), 4, 64)
        assert expected > model_flops
        # the rest is elementwise work (norms, softmax, loss) that the formula leaves out
        assert compiled == pytest.approx(expected, rel=0.03)
        counts[parallel_block] = (compiled, expected)
    # the parallel block's recompute also skips the attention output projection (1.6% of this step)
    compiled_saving = counts[False][0] - counts[True][0]
    expected_saving = counts[False][1] - counts[True][1]
    assert expected_saving > 0
    assert compiled_saving == pytest.approx(expected_saving, rel=0.1)
