"""Where a `Trainer` step spends its time: the top XLA ops of a few profiled steps of a preset.

Builds the preset with random weights, compiles and runs two warm-up steps, records `--steps` steps with
`jax.profiler`, and prints the ops that took the most time, summed over the steps: on an accelerator the
device's "XLA Ops" line (GPU: its compute streams' kernels), on CPU every host thread's op events (thread-seconds). The raw `xplane.pb`
stays in `--out` for TensorBoard / xprof.

    .venv/bin/python benchmarks/profile_train_step.py [--preset small] [--batch 4] [--seq_len 512]
        [--bf16] [--attention auto] [--matmul_precision highest|tf32] [--out DIR] [--top 30]
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import tempfile

import jax
from flax import nnx
from train_step_vs_hf import JAX_MATMUL_PRECISION, random_next_token_batch  # this folder's script

from next_jax.host_memory import reuse_freed_memory
from next_jax.models import get_preset
from next_jax.models.config import ATTENTION_IMPLS
from next_jax.models.decoder import Decoder
from next_jax.train.optimizers import make_optimizer
from next_jax.train.trainer import Trainer


def summarize(xplane: str, top: int) -> None:
    """Print the `top` op names by summed duration from a profile file."""
    from jax._src.lib import _profile_data  # the reader jax's own profiler tests use

    data = _profile_data.ProfileData.from_file(xplane)
    totals: collections.Counter = collections.Counter()
    counts: collections.Counter = collections.Counter()
    device_planes = [p for p in data.planes if p.name.startswith("/device:") and "CPU" not in p.name]
    for plane in device_planes or [p for p in data.planes if p.name.startswith("/host:")]:
        for line in plane.lines:
            # TPU planes have an "XLA Ops" line; GPU planes one line per stream ("Stream #14(Compute)").
            if device_planes and not (line.name == "XLA Ops" or "Compute" in line.name):
                continue
            for event in line.events:
                if not device_planes and (event.name.startswith("$") or "::" in event.name):
                    continue  # on CPU: Python frames and runtime wrappers, not XLA ops
                totals[event.name] += event.duration_ns
                counts[event.name] += 1
    total = sum(totals.values())
    where = ", ".join(p.name for p in device_planes) or "host threads"
    print(f"{where}: {total / 1e9:.4f} s of op time over {sum(counts.values())} op events")
    for name, ns in totals.most_common(top):
        print(f"  {ns / 1e6:10.2f} ms {ns / total:6.1%} x{counts[name]:<5d} {name[:110]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq_len", type=int, default=512)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--attention", choices=ATTENTION_IMPLS, default="auto")
    parser.add_argument("--matmul_precision", choices=("highest", "tf32"), default="highest")
    parser.add_argument("--out", default=None, help="profile folder (default: a new temporary one)")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    reuse_freed_memory()  # as the benchmarks and a CPU training process do; before jax's backend starts
    if jax.default_backend() != "cpu":
        jax.config.update("jax_default_matmul_precision", JAX_MATMUL_PRECISION[args.matmul_precision])

    config = get_preset(
        args.preset,
        dtype="bfloat16" if args.bf16 else "float32",
        param_dtype="float32",
        attention_impl=args.attention,
    )
    trainer = Trainer(
        Decoder(config, rngs=nnx.Rngs(0)),
        optimizer=make_optimizer("adamw", 1e-4),
        learning_rate=1e-4,
        peak_flops=1.0,
    )
    batch = random_next_token_batch(config.vocab_size, args.batch, args.seq_len)
    trainer.train_step(batch)
    trainer.train_step(batch)
    out = args.out or tempfile.mkdtemp(prefix="next_jax_profile_")
    with jax.profiler.trace(out):
        times = [trainer.train_step(batch)["step_time_s"] for _ in range(args.steps)]
    print(
        f"{args.preset} {config.dtype} attention {args.attention} batch {args.batch}x{args.seq_len} on "
        f"{jax.devices()[0].device_kind}: steps {', '.join(f'{t:.4g}' for t in times)} s"
    )
    xplanes = sorted(glob.glob(os.path.join(out, "**", "*.xplane.pb"), recursive=True), key=os.path.getmtime)
    print(f"profile: {xplanes[-1]}")
    summarize(xplanes[-1], args.top)


if __name__ == "__main__":
    main()
