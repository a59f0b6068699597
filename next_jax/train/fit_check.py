"""Proof of fit ahead of time: compile the train step and the sampler for a TPU topology with the real TPU
compiler (libtpu; no TPU needed) and read per-chip memory and FLOPs from the compiled programs.

`jax.experimental.topologies` describes a slice's devices; a mesh over them, `ShapeDtypeStruct`s with
`NamedSharding`s and `.lower(...).compile()` give what a run on that slice would compile. libtpu allows one
process at a time through a lockfile that any jax process holds once libtpu is installed, even one that
runs on CPU; a compile-only process touches no TPU, so entry points set `ALLOW_MULTIPLE_LIBTPU_LOAD=1`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from next_jax.models import partitioning, registry
from next_jax.models.config import DecoderConfig
from next_jax.models.mesh import create_mesh
from next_jax.train import flops, step_builder

GiB = 2**30
# Peak bf16 FLOP/s per chip (Cloud TPU documentation), for the step time at a stated MFU.
PEAK_BF16_FLOPS = {"TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5": 459e12, "TPU v6 lite": 918e12}
_HBM_CACHE: dict[str, int] = {}


def topology_mesh(topology: str, **sizes: int) -> jax.sharding.Mesh:
    """A `('data', 'fsdp', 'model')` mesh over the devices of a TPU topology such as `'v5p:8x8x4'`, laid out
    along its interconnect; axis `sizes` not given come from gin's `create_mesh` bindings."""
    from jax.experimental import topologies

    devices = topologies.get_topology_desc(topology_name=topology, platform="tpu").devices
    return create_mesh(devices=devices, along_interconnect=True, **sizes)


def hbm_bytes(mesh: jax.sharding.Mesh) -> int:
    """The HBM per chip the compiler lets a program use, read from the error of a program that is too big
    (the compiler knows it exactly; tables of nominal sizes do not)."""
    kind = mesh.devices.flat[0].device_kind
    if kind not in _HBM_CACHE:
        n = mesh.devices.size
        big = jax.ShapeDtypeStruct(
            (n, 2**40 // 4), jnp.float32, sharding=NamedSharding(mesh, PartitionSpec(mesh.axis_names))
        )
        try:
            jax.jit(lambda a: a * 2).lower(big).compile()
            raise RuntimeError("a 1 TiB-per-chip program compiled; cannot read the HBM size")
        except jax.errors.JaxRuntimeError as e:
            _HBM_CACHE[kind] = _gib_in(str(e), "available HBM")
    return _HBM_CACHE[kind]


def _gib_in(message: str, what: str) -> int:
    """Bytes of a size the TPU compiler prints as `<what> (15.75G)` (binary units)."""
    m = re.search(re.escape(what) + r" \(([\d.]+)([KMGT])\)", message)
    if not m:
        raise ValueError(f"no '{what}' size in: {message[:500]}")
    return int(float(m.group(1)) * 1024 ** "KMGT".index(m.group(2)) * 1024)


def per_chip_bytes(tree: Any) -> int:
    """Bytes one chip holds of a tree of sharded `ShapeDtypeStruct`s (the largest shard of each)."""
    return sum(
        math.prod(x.sharding.shard_shape(x.shape)) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)
    )


@dataclasses.dataclass
class Fit:
    """Per-chip memory of one compiled program (bytes), or the compiler's refusal."""

    name: str
    hbm: int
    compile_s: float
    fits: bool
    parts: dict[str, int]  # named per-chip consumers
    total: int
    error: str = ""
    flops_per_chip: float = 0.0  # the compiler's count (loop bodies counted once)

    def consumers(self) -> list[tuple[str, int]]:
        return sorted(self.parts.items(), key=lambda kv: -kv[1])


def _compile(name: str, lowered_fn: Callable[[], Any], hbm: int, known: dict[str, int]) -> tuple[Fit, Any]:
    """Compile; a RESOURCE_EXHAUSTED refusal becomes a `Fit` that does not fit (with the temporaries the
    compiler asked for beside the `known` sizes)."""
    start = time.perf_counter()
    try:
        compiled = lowered_fn().compile()
    except jax.errors.JaxRuntimeError as e:
        if "RESOURCE_EXHAUSTED" not in str(e):
            raise
        parts = dict(known)
        try:
            parts["temporaries"] = _gib_in(str(e), "HLO temporaries")
        except ValueError:
            pass
        fit = Fit(name, hbm, time.perf_counter() - start, False, parts, sum(parts.values()), str(e)[:2000])
        return fit, None
    mem = compiled.memory_analysis()
    parts = dict(known)
    args = mem.argument_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes
    parts["other arguments/outputs"] = max(args - sum(known.values()), 0)
    parts["temporaries"] = mem.temp_size_in_bytes
    parts["generated code"] = mem.generated_code_size_in_bytes
    total = sum(parts.values())
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    fit = Fit(name, hbm, time.perf_counter() - start, total <= hbm, parts, total, "", float(cost.get("flops", 0)))
    return fit, compiled


@dataclasses.dataclass
class TrainCheck:
    fit: Fit
    batch_size: int
    seq_len: int
    num_microbatches: int
    num_params: int
    model_flops: float  # PaLM formula, whole step, all chips
    expected_flops: float  # the formula plus what remat recomputes
    compiled_flops: float | None  # the compiler's count for the whole step, all chips (None: not compiled)


def check_train_step(
    config: DecoderConfig,
    mesh: jax.sharding.Mesh,
    optimizer: optax.GradientTransformation,
    *,
    batch_size: int,
    seq_len: int,
    num_microbatches: int = 1,
    z_loss: float = 0.0,
    count_flops: bool = True,
) -> TrainCheck:
    """Compile the train step (optimizer state, microbatches, donation as `Trainer` builds them) for
    `mesh` and report its per-chip memory and FLOPs."""
    hbm = hbm_bytes(mesh)
    parts = step_builder.build_step(
        registry.abstract_model(config), mesh, optimizer, z_loss=z_loss, num_microbatches=num_microbatches
    )
    batch = step_builder.abstract_batch(step_builder.batch_shapes(batch_size, seq_len), mesh)
    known = {
        "parameters (f32)": per_chip_bytes(parts.abstract_state.params),
        "optimizer state": per_chip_bytes(parts.abstract_state.opt_state),
        "batch": per_chip_bytes(batch),
    }
    fit, _ = _compile("train step", lambda: step_builder.lower_step(parts, batch), hbm, known)
    num_params = flops.count_params(parts.abstract_state.params)
    model_flops, expected = flops.train_step_flops(config, num_params, batch_size, seq_len)
    compiled_flops = None
    if count_flops and fit.error == "":
        if config.scan_layers or config.attention_impl == "scan":
            per_micro = _unrolled_step_flops(config, mesh, optimizer, batch_size // num_microbatches, seq_len)
        else:
            per_micro = fit.flops_per_chip * mesh.devices.size
        # the microbatch loop's body is counted once (and the optimizer update once per microbatch here:
        # a few FLOPs per parameter against thousands per parameter for the layers)
        compiled_flops = per_micro * num_microbatches
    return TrainCheck(fit, batch_size, seq_len, num_microbatches, num_params, model_flops, expected, compiled_flops)


# libtpu flags for the FLOP-counting compiles only: matmuls whole, not looped over collective windows.
COUNTING_OPTIONS = {
    "xla_tpu_enable_windowed_einsum_for_all_gather": False,
    "xla_tpu_enable_windowed_einsum_for_reduce_scatter": False,
}


def _unrolled_step_flops(
    config: DecoderConfig, mesh: jax.sharding.Mesh, optimizer: optax.GradientTransformation, batch: int, seq: int
) -> float:
    """The compiler's FLOPs of a one-microbatch step over all chips, the layers' loops counted in full.

    The compiler counts a loop body once (the layer scan, the attention's block scan), so the count comes
    from two small unrolled compiles, of 1 and 2 layers with loop-free attention ('xla', the same full
    score matrix): outside + L x (one layer). On TPU these compiles also turn off windowed einsums: the
    compiler otherwise splits an FSDP matmul into a loop over the all-gathered (or reduce-scattered) shards
    to overlap them with the collective, and counts one shard's matmul (palm_8b on v5p:2x2x2: 19 such loops
    in one layer's step, which made the step's count 37% short). The arithmetic is the same either way.
    """
    options = COUNTING_OPTIONS if mesh.devices.flat[0].platform == "tpu" else None
    counts = []
    for layers in (1, 2):
        small = config.replace(num_layers=layers, scan_layers=False, attention_impl="xla", layer_windows=())
        parts = step_builder.build_step(registry.abstract_model(small), mesh, optimizer, z_loss=small.z_loss)
        abstract = step_builder.abstract_batch(step_builder.batch_shapes(batch, seq), mesh)
        compiled = step_builder.lower_step(parts, abstract).compile(compiler_options=options)
        cost = compiled.cost_analysis()
        counts.append(float((cost[0] if isinstance(cost, list) else cost)["flops"]) * mesh.devices.size)
    layer = counts[1] - counts[0]
    return counts[0] + (config.num_layers - 1) * layer


@dataclasses.dataclass
class SamplerCheck:
    fit: Fit
    batch_size: int
    num_samples: int
    prompt_len: int
    max_new_tokens: int


def check_sampler(
    config: DecoderConfig,
    mesh: jax.sharding.Mesh,
    *,
    batch_size: int,
    num_samples: int,
    prompt_len: int,
    max_new_tokens: int,
    share_prompt_cache: bool = True,
) -> SamplerCheck:
    """Compile the sampler's program (prefill of `batch_size` prompts of `prompt_len`, the KV cache of
    `num_samples` continuations each, the decode loop of `max_new_tokens` steps) for `mesh`."""
    from next_jax.decode import sampler as sampler_lib

    hbm = hbm_bytes(mesh)
    graphdef, state = nnx.split(registry.abstract_model(config))
    state_shardings = partitioning.named_shardings(state, mesh)
    state = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, state_shardings)
    data_parallel = mesh.shape.get("data", 1) * mesh.shape.get("fsdp", 1)
    row = partitioning.sharding_for(("batch",), (data_parallel,), mesh)

    def rows(ndim: int) -> NamedSharding:
        return NamedSharding(mesh, PartitionSpec(row.spec[0], *([None] * (ndim - 1))))

    fn = functools.partial(
        sampler_lib._generate,  # the sampler's own program (what `Sampler._compile` jits)
        graphdef,
        num_samples=num_samples,
        max_new_tokens=max_new_tokens,
        top_k=0,
        use_top_p=True,
        greedy=False,
        eos_ids=(1,),
        pad_id=0,
        cache_dtype=config.jnp_dtype,
        share_prompt_cache=share_prompt_cache,
        row_sharding=row,
    )
    replicated = NamedSharding(mesh, PartitionSpec())
    jitted = jax.jit(
        fn,
        in_shardings=(state_shardings, rows(2), rows(2), rows(1), replicated, replicated, replicated),
        out_shardings=(rows(3), rows(3), rows(2)),
    )
    tokens = jax.ShapeDtypeStruct((batch_size, prompt_len), jnp.int32, sharding=rows(2))
    args = (
        state,
        tokens,
        tokens,
        jax.ShapeDtypeStruct((batch_size,), jnp.int32, sharding=rows(1)),
        jax.ShapeDtypeStruct((), jnp.uint32, sharding=replicated),
        jax.ShapeDtypeStruct((), jnp.float32, sharding=replicated),
        jax.ShapeDtypeStruct((), jnp.float32, sharding=replicated),
    )

    def lower():
        with partitioning.partitioned(mesh):
            return jitted.lower(*args)

    known = {f"parameters ({config.param_dtype})": per_chip_bytes(state)}
    fit, _ = _compile("sampler (prefill + decode loop)", lower, hbm, known)
    return SamplerCheck(fit, batch_size, num_samples, prompt_len, max_new_tokens)


def peak_flops(mesh: jax.sharding.Mesh) -> float | None:
    """Peak bf16 FLOP/s of one chip of `mesh`, if known."""
    return PEAK_BF16_FLOPS.get(mesh.devices.flat[0].device_kind)


def _size(n: float) -> str:
    return f"{n / GiB:8.2f} GiB" if n >= GiB / 10 else f"{n / 2**20:8.2f} MiB"


def format_fit(fit: Fit, margin: float) -> list[str]:
    """Lines of a per-chip memory report; `margin` is the share of HBM to keep free."""
    lines = [f"{fit.name}: compiled in {fit.compile_s:.0f} s" if not fit.error else f"{fit.name}: DOES NOT FIT"]
    for name, size in fit.parts.items():
        lines.append(f"  {name:<26} {_size(size)}")
    spare = 1 - fit.total / fit.hbm
    verdict = "fits" if fit.fits and spare >= margin else "does not fit"
    if fit.fits and spare < margin:
        verdict += f" with {margin:.0%} spare"
    lines.append(f"  {'total':<26} {_size(fit.total)} of {fit.hbm / GiB:.2f} GiB HBM ({spare:.1%} spare): {verdict}")
    if verdict != "fits":
        top = ", ".join(f"{n} {_size(s).strip()}" for n, s in fit.consumers()[:3])
        lines.append(f"  largest consumers: {top}")
    if fit.error:
        lines.append("  compiler: " + fit.error.splitlines()[0][:300])
    return lines


def fits_with_margin(fit: Fit, margin: float) -> bool:
    return fit.fits and 1 - fit.total / fit.hbm >= margin
