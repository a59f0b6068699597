"""The decoder (PaLM-style, Llama, Qwen2, Gemma), its presets, partitioning and HF interop."""

from next_jax.models.cache import Cache, LayerCache
from next_jax.models.config import DecoderConfig
from next_jax.models.decoder import Decoder
from next_jax.models.hf import Pretrained, load_pretrained, save_pretrained
from next_jax.models.mesh import create_mesh
from next_jax.models.partitioning import logical_axis_rules, partitioned, shard_model
from next_jax.models.registry import build_model, get_preset, list_presets, param_count

__all__ = [
    "Cache",
    "Decoder",
    "DecoderConfig",
    "LayerCache",
    "Pretrained",
    "build_model",
    "create_mesh",
    "get_preset",
    "list_presets",
    "load_pretrained",
    "logical_axis_rules",
    "param_count",
    "partitioned",
    "save_pretrained",
    "shard_model",
]
