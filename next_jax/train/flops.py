"""FLOP accounting for decoder training and the matmul ceiling that MFU is measured against.

Model FLOPs follow the PaLM appendix-B convention: per token, 6 * N_matmul for the weight matmuls
(forward 2N, backward 4N) plus 12 * layers * heads * head_dim * seq_len for attention scores and
values. Causal masking is not subtracted (the convention counts the full score matrix), and
rematerialisation is not counted, so this is *model* FLOPs utilisation, not hardware utilisation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class FlopCounts:
    """Model FLOPs per token for one forward pass and for one training step (forward + backward)."""

    forward_per_token: float
    train_per_token: float


def matmul_param_count(num_params: int, vocab_size: int, embed_dim: int, tied_embeddings: bool) -> int:
    """Parameters that take part in a matmul for every token.

    The input embedding is a gather, not a matmul; with tied embeddings the same table is the output
    projection and so it does count once.
    """
    return num_params if tied_embeddings else num_params - vocab_size * embed_dim


def decoder_flops(
    *, matmul_params: int, num_layers: int, num_heads: int, head_dim: int, seq_len: int
) -> FlopCounts:
    """Model FLOPs per token at context length `seq_len` (PaLM convention)."""
    attention_fwd = 4.0 * num_layers * num_heads * head_dim * seq_len
    forward = 2.0 * matmul_params + attention_fwd
    return FlopCounts(forward_per_token=forward, train_per_token=3.0 * forward)


def count_params(tree) -> int:
    """Total number of scalars in a pytree of arrays."""
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def measure_matmul_flops(
    dim: int = 2048, dtype=jnp.float32, repeats: int = 5, device: jax.Device | None = None
) -> float:
    """Best sustained FLOP/s of a jitted square `dim` x `dim` matmul on `device` (default: this process's
    first device).

    This is the ceiling that MFU is reported against on CPU, where there is no published peak: the
    fraction of the machine's own dense-matmul speed that training achieves.
    """
    device = device or jax.local_devices()[0]  # jax.devices()[0] may be another process's
    key_a, key_b = jax.random.split(jax.random.key(0))
    a = jax.device_put(jax.random.normal(key_a, (dim, dim), dtype), device)
    b = jax.device_put(jax.random.normal(key_b, (dim, dim), dtype), device)
    matmul = jax.jit(jnp.matmul)
    matmul(a, b).block_until_ready()  # compile and warm caches
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2.0 * dim**3 / best


def mfu(model_flops_per_second: float, peak_flops_per_second: float) -> float:
    """Model FLOPs utilisation: achieved model FLOP/s over the peak (summed over devices)."""
    return model_flops_per_second / peak_flops_per_second


def recomputed_forward_flops(config, matmul_params: int, seq_len: int) -> float:
    """Forward FLOPs per token that rematerialisation repeats in the backward pass.

    Only `nothing_saveable` recomputes matmuls (the `dots_*` policies keep their outputs and repeat
    elementwise work, counted as 0 here), and only inside the layers: the output projection to the vocabulary
    is not rematerialised. Nor is all of a layer: the backward pass needs a matmul's input, not its output, so
    the compiler drops the recomputed matmuls whose output only feeds the residual sum: the MLP's down
    projection, and with `parallel_block` the attention's output projection too (in a sequential block that
    output feeds the MLP's norm, which the backward pass needs).
    """
    if not (config.remat and config.remat_policy == "nothing_saveable"):
        return 0.0
    layer_matmul_params = matmul_params - config.vocab_size * config.embed_dim
    dead_per_layer = config.mlp_dim * config.embed_dim
    if config.parallel_block:
        dead_per_layer += config.num_heads * config.head_dim * config.embed_dim
    recomputed = decoder_flops(matmul_params=layer_matmul_params - config.num_layers * dead_per_layer,
                               num_layers=config.num_layers, num_heads=config.num_heads,
                               head_dim=config.head_dim, seq_len=seq_len)
    return recomputed.forward_per_token


def train_step_flops(config, num_params: int, batch_size: int, seq_len: int) -> tuple[float, float]:
    """(model FLOPs, expected hardware FLOPs) of one train step of a `DecoderConfig` on a
    `[batch_size, seq_len]` batch; the latter adds the forward work that remat recomputes."""
    matmul_params = matmul_param_count(num_params, config.vocab_size, config.embed_dim, config.tie_embeddings)
    counts = decoder_flops(
        matmul_params=matmul_params,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        head_dim=config.head_dim,
        seq_len=seq_len,
    )
    tokens = batch_size * seq_len
    recompute = recomputed_forward_flops(config, matmul_params, seq_len)
    return counts.train_per_token * tokens, (counts.train_per_token + recompute) * tokens
