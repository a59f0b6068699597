"""The shared-prefix KV cache: one copy of each prompt's keys/values serves all of its samples."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from tiny_decoder import CONFIG

from next_jax.models import cache as cache_lib
from next_jax.models.decoder import Decoder

PROMPTS, SAMPLES, PREFIX, NEW = 2, 3, 7, 5


@pytest.fixture(scope="module")
def model() -> Decoder:
    return Decoder(CONFIG, rngs=nnx.Rngs(3))  # grouped-query attention: 4 heads over 2 KV heads


def _prefill(model: Decoder, max_len: int):
    """Left-padded prompts (row 0 has two pads) prefilled into a cache of `max_len` slots."""
    rng = np.random.default_rng(0)
    tokens = jnp.asarray(rng.integers(4, CONFIG.vocab_size, (PROMPTS, PREFIX)), jnp.int32)
    segments = jnp.asarray([[0, 0] + [1] * (PREFIX - 2), [1] * PREFIX], jnp.int32)
    positions = jnp.clip(jnp.cumsum(segments, axis=1) - 1, 0)
    cache = model.init_cache(PROMPTS, max_len)
    _, cache = model(tokens, positions=positions, segment_ids=segments, cache=cache)
    return cache, jnp.repeat(positions[:, -1] + 1, SAMPLES)


def _repeated(cache: cache_lib.Cache) -> cache_lib.Cache:
    return jax.tree.map(lambda x: jnp.repeat(x, SAMPLES, axis=0) if x.ndim else x, cache)


@pytest.mark.parametrize("step", [1, 2])
def test_decoding_on_shared_prefix_equals_repeated_cache(model, step):
    """Each row continues its prompt as with its own full copy of the prompt cache (1 or 2 tokens a call)."""
    prompt_cache, next_pos = _prefill(model, PREFIX)
    shared = cache_lib.share_prefix(prompt_cache, SAMPLES, NEW)
    repeated = _repeated(_prefill(model, PREFIX + NEW)[0])
    assert shared.max_len == repeated.max_len and int(shared.index) == int(repeated.index) == PREFIX
    tokens = jnp.asarray(np.random.default_rng(1).integers(4, CONFIG.vocab_size, (PROMPTS * SAMPLES, 4)))
    for t in range(0, 4, step):
        positions = next_pos[:, None] + t + jnp.arange(step)
        got, shared = model(tokens[:, t : t + step], positions=positions, cache=shared)
        want, repeated = model(tokens[:, t : t + step], positions=positions, cache=repeated)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(shared.key_mask), np.asarray(repeated.key_mask))
    # The own buffers hold exactly the repeated cache's new slots, row b * SAMPLES + s at [b, :, s].
    own = np.asarray(shared.layers[0].k).transpose(0, 2, 1, 3, 4).reshape(PROMPTS * SAMPLES, 2, NEW, -1)
    np.testing.assert_allclose(
        own[:, :, :4], np.asarray(repeated.layers[0].k)[:, :, PREFIX : PREFIX + 4], atol=1e-6
    )
    assert not own[:, :, 4:].any()


def test_shared_prefix_stores_each_prompt_once(model):
    prompt_cache, _ = _prefill(model, PREFIX)
    shared = cache_lib.share_prefix(prompt_cache, SAMPLES, NEW)
    layer = shared.layers[0]
    assert layer.prefix_k.shape == (PROMPTS, 2, PREFIX, CONFIG.head_dim)
    assert layer.k.shape == (PROMPTS, 2, SAMPLES, NEW, CONFIG.head_dim)
    assert shared.key_mask.shape == (PROMPTS * SAMPLES, PREFIX + NEW)


def test_shared_prefix_cache_shardings_split_prompts_and_rows():
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]).reshape(1, 1, 1), ("data", "fsdp", "model"))
    cache = cache_lib.share_prefix(cache_lib.Cache.zeros(2, PROMPTS, PREFIX, 2, 8, jnp.float32), SAMPLES, NEW)
    shardings = cache.shardings(mesh)
    assert jax.tree.structure(shardings) == jax.tree.structure(cache)
    axes = cache.logical_axes().layers[0]
    assert axes.prefix_k == cache_lib.KV_AXES and axes.k == cache_lib.GROUPED_KV_AXES
