"""Model presets: every gin file parses, builds abstractly and has the published parameter count."""

from __future__ import annotations

import gin
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from next_jax.models import partitioning
from next_jax.models.config import DecoderConfig
from next_jax.models.registry import (
    PRESET_DIR,
    abstract_model,
    build_model,
    get_preset,
    list_presets,
    param_count,
    preset_bindings,
)

# Published parameter counts (PaLM: Chowdhery et al. 2022 Table 1; others: the released checkpoints).
PUBLISHED = {
    "palm_8b": 8.63e9,
    "palm_62b": 62.50e9,
    "llama3_8b": 8.03e9,
    "qwen2p5_coder_1p5b": 1.54e9,
    "qwen2p5_coder_7b": 7.61e9,
    "gemma_2b": 2.51e9,
    "gemma_7b": 8.54e9,
}
SIZE_RANGES = {"tiny": (5e4, 1e6), "byte_1m": (0.8e6, 1.1e6), "small": (5e7, 1e8), "palm_1b": (0.9e9, 1.2e9)}


def test_every_family_and_size_has_a_preset():
    assert set(list_presets()) == set(PUBLISHED) | set(SIZE_RANGES)
    families = {get_preset(name).family for name in list_presets()}
    assert families == {"palm", "llama", "qwen2", "gemma"}


@pytest.mark.parametrize("name", sorted(PUBLISHED) + sorted(SIZE_RANGES))
def test_preset_builds_abstractly_with_expected_size(name):
    config = get_preset(name)
    model = abstract_model(config)
    leaves = jax.tree.leaves(nnx.state(model))
    assert leaves and all(isinstance(x, jax.ShapeDtypeStruct) for x in leaves)  # nothing allocated
    count = param_count(config)
    print(f"{name}: {count / 1e9:.3f}B parameters")
    if name in PUBLISHED:
        assert abs(count - PUBLISHED[name]) / PUBLISHED[name] < 0.02
    else:
        low, high = SIZE_RANGES[name]
        assert low <= count <= high


def test_palm_62b_is_within_two_percent_of_62b():
    config = get_preset("palm_62b")
    assert (config.num_layers, config.embed_dim, config.num_heads, config.head_dim) == (64, 8192, 32, 256)
    assert config.num_kv_heads == 1 and config.parallel_block and config.tie_embeddings
    assert config.mlp_dim == 4 * config.embed_dim and config.activation == "swiglu"
    assert abs(param_count(config) - 62e9) / 62e9 < 0.02


@pytest.mark.parametrize("name", ["tiny", "gemma_7b", "palm_62b"])
def test_preset_file_is_plain_gin_that_configures_decoder_config(name):
    gin.clear_config()
    try:
        gin.parse_config_file(str(PRESET_DIR / f"{name}.gin"))
        assert DecoderConfig() == get_preset(name)
    finally:
        gin.clear_config()


def test_get_preset_overrides_and_leaves_global_gin_alone():
    gin.clear_config()
    config = get_preset("gemma_7b", num_layers=3)
    assert config.num_layers == 3 and config.embed_dim == preset_bindings("gemma_7b")["embed_dim"] == 3072
    assert DecoderConfig().embed_dim != 3072  # get_preset bound nothing globally
    with pytest.raises(KeyError):
        get_preset("no_such_model")


def test_presets_reject_non_literal_bindings(tmp_path):
    bad = tmp_path / "bad.gin"
    bad.write_text("DecoderConfig.num_layers = %LAYERS\n")
    with pytest.raises(ValueError):
        get_preset(str(bad))
    other = tmp_path / "other.gin"
    other.write_text("create_mesh.model = 2\n")
    with pytest.raises(ValueError):
        get_preset(str(other))


def test_build_model_from_gin_bindings_initialises_real_parameters():
    gin.clear_config()
    try:
        gin.parse_config_file(str(PRESET_DIR / "tiny.gin"))
        gin.parse_config_files_and_bindings([], ["DecoderConfig.num_layers = 1", "build_model.seed = 3"])
        model = build_model()
    finally:
        gin.clear_config()
    assert model.config == get_preset("tiny", num_layers=1) and len(model.layers) == 1
    q = np.asarray(model.layers[0].attn.q.get_value())
    # fan-in truncated normal: std about 1/sqrt(embed_dim), mean about 0
    assert abs(q.std() * np.sqrt(model.config.embed_dim) - 1.0) < 0.2 and abs(q.mean()) < 0.05
    np.testing.assert_array_equal(model.final_norm.scale.get_value(), np.ones(model.config.embed_dim))
    assert param_count(model) == param_count(model.config)
    assert model(jnp.zeros((1, 3), jnp.int32)).shape == (1, 3, model.config.vocab_size)


def test_sharding_gin_files_set_the_rules():
    gin.clear_config()
    try:
        gin.parse_config_file(str(PRESET_DIR / "sharding" / "fsdp_tp.gin"))
        assert partitioning.logical_axis_rules() == partitioning.STANDARD_RULES
        gin.clear_config()
        gin.parse_config_file(str(PRESET_DIR / "sharding" / "data_parallel.gin"))
        assert partitioning.logical_axis_rules() == (("batch", ("data", "fsdp")),)
    finally:
        gin.clear_config()
