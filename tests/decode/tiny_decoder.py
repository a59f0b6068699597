"""The tiny decoder the sampler tests share (a uniquely named module, importable from any test file)."""

from next_jax.models.config import DecoderConfig

EOS = 3
PAD = 0
CONFIG = DecoderConfig(
    vocab_size=97, num_layers=2, embed_dim=32, num_heads=4, num_kv_heads=2, head_dim=8, mlp_dim=64
)
