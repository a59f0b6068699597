"""Tiny decoder config and batches shared by the trainer tests and their subprocess workers."""

import numpy as np

from next_jax.models.config import DecoderConfig

TINY = DecoderConfig(
    vocab_size=64, num_layers=2, embed_dim=32, num_heads=4, num_kv_heads=2, head_dim=8, mlp_dim=64
)


def make_batch(seed: int, batch: int = 8, length: int = 16, vocab: int = 64, prompt: int = 4) -> dict:
    """A DecoderFeatureConverter-layout batch: `prompt` leading tokens per row carry no loss, and each row
    has a random number of trailing padding positions (weight 0, segment 0)."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(1, vocab, (batch, length)).astype(np.int32)
    inputs = np.concatenate([np.zeros((batch, 1), np.int32), targets[:, :-1]], axis=1)
    lengths = rng.integers(length // 2, length + 1, batch)
    live = np.arange(length)[None, :] < lengths[:, None]
    weights = (live & (np.arange(length)[None, :] >= prompt)).astype(np.float32)
    return {
        "decoder_input_tokens": np.where(live, inputs, 0).astype(np.int32),
        "decoder_target_tokens": np.where(live, targets, 0).astype(np.int32),
        "decoder_loss_weights": weights,
        "decoder_segment_ids": live.astype(np.int32),
        "decoder_positions": np.where(live, np.arange(length)[None, :], 0).astype(np.int32),
    }
