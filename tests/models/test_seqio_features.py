"""The decoder consumes seqio's packed prefix-LM features as they come out of the feature converter."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

seqio = pytest.importorskip("seqio")
tf = pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def packed_batch() -> dict[str, np.ndarray]:
    examples = [
        {"inputs": [5, 6, 7], "targets": [8, 9, 1]},
        {"inputs": [11, 12], "targets": [13, 1]},
    ]
    ds = tf.data.Dataset.from_generator(
        lambda: iter(examples),
        output_signature={k: tf.TensorSpec([None], tf.int32) for k in ("inputs", "targets")},
    )
    converted = seqio.PrefixLMFeatureConverter(pack=True)(ds, {"inputs": 6, "targets": 6})
    batch = next(converted.batch(1).as_numpy_iterator())
    assert batch["decoder_segment_ids"].max() == 2  # both examples share one row
    return batch


def test_packed_prefix_lm_row_equals_each_example_alone(packed_batch, family_configs, random_model):
    model = random_model(family_configs["llama"])
    forward = nnx.jit(lambda m, **kw: m(**kw))
    tokens = jnp.asarray(packed_batch["decoder_input_tokens"])
    segments = packed_batch["decoder_segment_ids"]
    prefix = packed_batch["decoder_causal_attention"]
    packed = np.asarray(
        forward(
            model,
            tokens=tokens,
            positions=jnp.asarray(packed_batch["decoder_positions"]),
            segment_ids=jnp.asarray(segments),
            prefix_mask=jnp.asarray(prefix),
        )
    )
    for segment in (1, 2):
        cols = np.flatnonzero(segments[0] == segment)
        alone = forward(model, tokens=tokens[:, cols], prefix_mask=jnp.asarray(prefix[:, cols]))
        np.testing.assert_allclose(packed[0, cols], np.asarray(alone)[0], atol=2e-5)
    # the prefix flag matters: ignoring it changes the prompt tokens' logits
    causal_only = np.asarray(
        forward(
            model,
            tokens=tokens,
            positions=jnp.asarray(packed_batch["decoder_positions"]),
            segment_ids=jnp.asarray(segments),
        )
    )
    assert np.abs(causal_only[0, :2] - packed[0, :2]).max() > 1e-3
