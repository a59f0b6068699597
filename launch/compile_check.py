"""Proof of fit ahead of time: compile the train step and the sampler for a TPU slice with the real TPU
compiler (libtpu, `pip install -e '.[tpu]'`); no TPU needed.

    python launch/compile_check.py --gin_file=gin/models/palm_62b.gin --gin_file=gin/runs/finetune.gin \\
        --topology=v5p:8x8x4 --batch 512 --seq 2048 --gin.create_mesh.fsdp=256 --gin.Trainer.num_microbatches=4

Prints per chip: parameters, optimizer state, temporaries (activations), generated code and the total
against the chip's HBM; the step's FLOPs from the compiled program and from the model formula; the step
time at `--mfu`. Exit status 1 when a program does not fit (the largest consumers are named).
"""

from __future__ import annotations

import os

# A compile-only process touches no TPU; without this, any other jax process on the machine (they all load
# libtpu once it is installed) holds libtpu's lockfile and the topology cannot be opened.
os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
if os.environ.get("JAX_PLATFORMS") == "cpu":
    del os.environ["JAX_PLATFORMS"]  # the TPU plugin must load to compile for a topology

import argparse  # noqa: E402
import sys  # noqa: E402

import gin  # noqa: E402

from next_jax.gin_flags import bound_value, gin_bindings  # noqa: E402
from next_jax.models.config import DecoderConfig  # noqa: E402
from next_jax.train import fit_check, optimizers  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gin_file", action="append", default=[])
    ap.add_argument("--topology", required=True, help="e.g. v5e:2x2, v5p:8x8x4")
    ap.add_argument("--batch", type=int, default=512, help="global train batch (sequences)")
    ap.add_argument("--seq", type=int, default=None, help="train sequence length (default: max_len)")
    ap.add_argument("--sample_batch", type=int, default=None, help="prompts per sampler call (default: data x fsdp)")
    ap.add_argument("--prompt_len", type=int, default=512)
    ap.add_argument("--mfu", type=float, default=0.4, help="MFU at which to state the step time")
    ap.add_argument("--margin", type=float, default=0.0, help="share of HBM that must stay free to fit")
    ap.add_argument("--skip_train", action="store_true")
    ap.add_argument("--skip_sampler", action="store_true")
    ap.add_argument("--no_flop_count", action="store_true", help="skip the two small compiles for FLOPs")
    args, rest = ap.parse_known_args(argv)
    bindings = gin_bindings(ap, rest)
    import next_jax.decode.sampler  # noqa: F401  (registers sampling_params for gin)
    import next_jax.train.trainer  # noqa: F401  (registers Trainer for gin)

    gin.parse_config_files_and_bindings(args.gin_file, bindings)
    config = DecoderConfig()
    mesh = fit_check.topology_mesh(args.topology)
    seq = args.seq or config.max_len
    print(f"{args.topology}: {mesh.devices.size} x {mesh.devices.flat[0].device_kind}, mesh {dict(mesh.shape)}")
    print(f"model: {config.num_layers} layers x {config.embed_dim}, scan_layers={config.scan_layers}, "
          f"remat={config.remat} ({config.remat_policy}), attention={config.attention_impl}, "
          f"dtype={config.dtype}/{config.param_dtype}")
    ok = True
    # Batches are split over the data-parallel axes (a train batch per microbatch): say so, not a traceback.
    data_parallel = mesh.shape["data"] * mesh.shape["fsdp"]
    microbatches = int(bound_value("Trainer.num_microbatches", 1))
    if not args.skip_train and args.batch % (data_parallel * microbatches):
        ap.error(f"--batch {args.batch} is not a multiple of data x fsdp ({data_parallel}) x "
                 f"{microbatches} microbatch(es)")
    if not args.skip_sampler and args.sample_batch and args.sample_batch % data_parallel:
        ap.error(f"--sample_batch {args.sample_batch} is not a multiple of data x fsdp ({data_parallel})")
    if not args.skip_train:
        optimizer = optimizers.make_optimizer(learning_rate=optimizers.make_schedule())
        check = fit_check.check_train_step(
            config, mesh, optimizer, batch_size=args.batch, seq_len=seq, num_microbatches=microbatches,
            z_loss=config.z_loss, count_flops=not args.no_flop_count,
        )
        print(f"\ntrain step: batch {args.batch} x {seq} in {microbatches} microbatch(es), "
              f"{check.num_params / 1e9:.3g}B parameters, {bound_value('make_optimizer.name', 'adafactor')}")
        print("\n".join(fit_check.format_fit(check.fit, args.margin)))
        ok &= fit_check.fits_with_margin(check.fit, args.margin)
        print(f"  FLOPs per step: model (6N + attention) {check.model_flops:.4g}, "
              f"with remat recompute {check.expected_flops:.4g}")
        if check.compiled_flops:
            print(f"  FLOPs per step: compiled {check.compiled_flops:.4g} "
                  f"({check.compiled_flops / check.expected_flops - 1:+.1%} vs the formula with recompute)")
        peak = fit_check.peak_flops(mesh)
        if peak:
            seconds = check.model_flops / (mesh.devices.size * peak * args.mfu)
            tokens = args.batch * seq / seconds
            print(f"  step time at {args.mfu:.0%} MFU: {seconds:.2f} s ({tokens:,.0f} tokens/s)")
    if not args.skip_sampler:
        params = next_jax.decode.sampler.sampling_params()
        check = fit_check.check_sampler(
            config, mesh, batch_size=args.sample_batch or data_parallel, num_samples=params["num_samples"],
            prompt_len=args.prompt_len, max_new_tokens=params["max_new_tokens"],
        )
        print(f"\nsampler: {check.batch_size} prompts x {check.num_samples} samples, prompt {check.prompt_len} "
              f"+ {check.max_new_tokens} new tokens")
        print("\n".join(fit_check.format_fit(check.fit, args.margin)))
        ok &= fit_check.fits_with_margin(check.fit, args.margin)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
