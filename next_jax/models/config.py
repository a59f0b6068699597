"""`DecoderConfig`: one frozen description of every decoder family next-jax runs.

The same fields cover PaLM-style from-scratch models and the open families (Llama, Qwen2, Gemma) that
`next_jax.models.hf` imports; a family name is only a label plus the defaults its presets choose.
"""

from __future__ import annotations

import dataclasses

import gin
import jax.numpy as jnp

FAMILIES = ("palm", "llama", "qwen2", "gemma")
ACTIVATIONS = ("swiglu", "geglu", "geglu_exact", "reglu")
NORMS = ("rms", "rms_plus_one", "layer")
ROPE_SCALINGS = ("none", "linear", "llama3")
# How attention without a cache is computed (see models/attention.py): 'blocked' = causal query blocks that
# skip future keys (about 2x faster than 'xla' on CPU; on an H200 the two were within run-to-run noise),
# 'xla' = `jax.nn.dot_product_attention`'s XLA path, 'cudnn' = cuDNN flash attention for bf16/f16 on a GPU
# (about 10% faster steps than 'xla' for `small` in bf16 on an H200; elsewhere it is 'xla'), 'auto' =
# 'blocked'. All compute the same function.
# 'scan' = a `lax.scan` over query blocks, each against all keys under the mask, its body rematerialised:
# the compiled program and the live scores do not grow with sequence length (for TPU-scale compiles; no
# causal skipping, so about 2x the attention FLOPs of 'blocked' at long lengths).
ATTENTION_IMPLS = ("auto", "blocked", "xla", "cudnn", "scan")
# `jax.checkpoint_policies` a rematerialised layer may use: what it keeps from the forward pass.
REMAT_POLICIES = (
    "nothing_saveable",
    "dots_saveable",
    "dots_with_no_batch_dims_saveable",
    "everything_saveable",
)


@gin.configurable(module="next_jax.models")
@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """Shape and arithmetic of a decoder-only transformer.

    `num_kv_heads` < `num_heads` gives grouped-query attention (1 = multi-query). `head_dim` is independent of
    `embed_dim` (Gemma-7B: 16 x 256 heads on a 3072-wide model). `activation` names a gated MLP: the hidden
    layer is act(x W_gate) * (x W_up). `norm='rms_plus_one'` scales by (1 + w) as Gemma does, `'layer'` is a
    bias-free LayerNorm (PaLM). `embed_scale` multiplies embeddings by sqrt(embed_dim) (Gemma).
    `scale_tied_logits` divides tied-embedding logits by sqrt(embed_dim) (T5X/PaLM from-scratch recipe).
    `layer_windows` optionally gives each layer a sliding attention window (0 = full attention).
    `z_loss` is read by the trainer, not by the model. `attention_impl` picks the attention kernel (one of
    `ATTENTION_IMPLS`); every choice computes the same function.
    `scan_layers` stores the layers' parameters stacked on a leading `layers` axis and runs them in one
    `lax.scan` (MaxText's `scan_layers`): compile time and program size stop growing with depth; the
    function is the same. `remat` recomputes each layer's activations in the backward pass, keeping what
    `remat_policy` (one of `REMAT_POLICIES`) names.
    """

    vocab_size: int = 256
    num_layers: int = 2
    embed_dim: int = 64
    num_heads: int = 4
    num_kv_heads: int = 4
    head_dim: int = 16
    mlp_dim: int = 128
    family: str = "llama"
    activation: str = "swiglu"
    parallel_block: bool = False
    qkv_bias: bool = False
    out_bias: bool = False
    mlp_bias: bool = False
    norm: str = "rms"
    norm_eps: float = 1e-6
    embed_scale: bool = False
    tie_embeddings: bool = False
    scale_tied_logits: bool = False
    rope_theta: float = 10_000.0
    rope_scaling: str = "none"
    rope_scaling_factor: float = 1.0
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_max_len: int = 8192
    layer_windows: tuple[int, ...] = ()
    max_len: int = 2048
    z_loss: float = 0.0
    remat: bool = False
    remat_policy: str = "nothing_saveable"
    scan_layers: bool = False
    attention_impl: str = "auto"
    dtype: str = "float32"
    param_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family {self.family!r} not in {FAMILIES}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r} not in {ACTIVATIONS}")
        if self.norm not in NORMS:
            raise ValueError(f"norm {self.norm!r} not in {NORMS}")
        if self.rope_scaling not in ROPE_SCALINGS:
            raise ValueError(f"rope_scaling {self.rope_scaling!r} not in {ROPE_SCALINGS}")
        if self.attention_impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention_impl {self.attention_impl!r} not in {ATTENTION_IMPLS}")
        if self.remat_policy not in REMAT_POLICIES:
            raise ValueError(f"remat_policy {self.remat_policy!r} not in {REMAT_POLICIES}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}"
            )
        if self.head_dim % 2:
            raise ValueError(f"RoPE needs an even head_dim, got {self.head_dim}")
        if self.layer_windows and len(self.layer_windows) != self.num_layers:
            raise ValueError(
                f"layer_windows has {len(self.layer_windows)} entries for {self.num_layers} layers"
            )
        # gin and JSON hand lists over; a frozen, hashable config needs a tuple.
        object.__setattr__(self, "layer_windows", tuple(int(w) for w in self.layer_windows))

    @property
    def jnp_dtype(self) -> jnp.dtype:
        """Computation dtype as a jnp dtype."""
        return jnp.dtype(self.dtype)

    @property
    def jnp_param_dtype(self) -> jnp.dtype:
        """Parameter storage dtype as a jnp dtype."""
        return jnp.dtype(self.param_dtype)

    def window(self, layer: int) -> int:
        """Sliding-window size of `layer` (0 = attend to the whole causal past)."""
        return self.layer_windows[layer] if self.layer_windows else 0

    def replace(self, **changes) -> DecoderConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)
