"""Training step time: next_jax `Trainer` vs a plain PyTorch step of the same transformers model and batch.

Both sides train the same randomly initialised float32 Llama-shaped network (the `small` preset by
default: created in transformers, saved, and loaded into next_jax) with AdamW on the same `[batch, 512]`
batch of next-token targets. The PyTorch step is forward, cross-entropy, backward, `AdamW.step`,
`zero_grad`. Also measured in this run: the matmul ceiling of the device (XLA, a square matmul in the
activation dtype), against which our MFU is reported (PaLM model-FLOPs convention, next_jax/train/flops.py).

Targets: ours >= 1.2x faster than PyTorch at the same precision; MFU >= 35% for `small` at length 512.

    .venv/bin/python benchmarks/train_step_vs_hf.py [--batch 4] [--seq_len 512] [--steps 5] [--bf16]
        [--device cpu|gpu] [--matmul_precision highest|tf32] [--attention auto|blocked|xla|cudnn]

Each side runs in its own process and the steps alternate (ceiling, ours, theirs, ...), so both see the
same machine load but neither side's allocator or worker threads disturb the other: in one process, a
PyTorch step returning its large buffers made the next XLA:CPU step about 1.5x slower (page faults
on fresh memory). Step times are medians of `--steps` rounds after one warm-up step each.

Both processes first call `next_jax.host_memory.reuse_freed_memory()` (glibc keeps freed memory for
reuse, see that module: without it every XLA:CPU step of the `small` preset re-faults a 2.4 GB scratch
block, about 1-3 s of system time; PyTorch's allocator gets the same setting); `--no_reuse_memory` leaves
both processes' allocators at glibc's defaults.

`--device gpu` puts both sides on the first GPU (JAX's CUDA backend, `torch.device("cuda")`). There,
float32 matmuls are full f32 on both sides by default (`--matmul_precision highest`: JAX
`jax_default_matmul_precision`, PyTorch `allow_tf32=False`, its own default); `tf32` lets both use
TensorFloat-32. `--bf16` compares bf16 activations with float32 master weights (ours) against
`torch.autocast(bfloat16)` (theirs).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time

SPEED_TARGET, MFU_TARGET = 1.2, 0.35
LR = 1e-4
# `--matmul_precision` -> `jax_default_matmul_precision` (PyTorch: `allow_tf32` on for "tf32").
JAX_MATMUL_PRECISION = {"highest": "highest", "tf32": "tensorfloat32"}


def random_next_token_batch(vocab_size: int, batch: int, seq_len: int):
    """A seeded `[batch, seq_len]` batch of random next-token targets in the Trainer's feature names."""
    import numpy as np

    targets = np.random.default_rng(0).integers(1, vocab_size, (batch, seq_len)).astype(np.int32)
    return {
        "decoder_input_tokens": np.concatenate([np.zeros((batch, 1), np.int32), targets[:, :-1]], axis=1),
        "decoder_target_tokens": targets,
        "decoder_loss_weights": np.ones_like(targets, np.float32),
    }


def reuse_memory(args: argparse.Namespace) -> None:
    """`host_memory.reuse_freed_memory()` unless `--no_reuse_memory`; first thing in each process."""
    if not args.no_reuse_memory:
        from next_jax.host_memory import reuse_freed_memory

        reuse_freed_memory()


def parse_args() -> argparse.Namespace:
    from next_jax.models.config import ATTENTION_IMPLS  # light: no jax backend starts

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq_len", type=int, default=512)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--microbatches", type=int, default=1)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--matmul_precision", choices=("highest", "tf32"), default="highest")
    parser.add_argument(
        "--attention", choices=ATTENTION_IMPLS, default="auto", help="DecoderConfig.attention_impl"
    )
    parser.add_argument(
        "--no_reuse_memory", action="store_true", help="skip host_memory.reuse_freed_memory()"
    )
    return parser.parse_args()


def torch_worker(conn, hf_config: dict, folder: str, inputs, targets, args: argparse.Namespace) -> None:
    """The PyTorch side, in its own process: create and save the model, then one step per request."""
    reuse_memory(args)
    import torch
    import transformers

    gpu = args.device == "gpu"
    device = torch.device("cuda" if gpu else "cpu")
    torch.set_num_threads(os.cpu_count() or 1)  # XLA's CPU client also uses one thread per core
    if gpu:
        tf32 = args.matmul_precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    torch.manual_seed(0)
    config = transformers.AutoConfig.for_model(**hf_config)
    model = transformers.AutoModelForCausalLM.from_config(config).train()
    model.save_pretrained(folder)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    t_inputs = torch.tensor(inputs, dtype=torch.long, device=device)
    t_targets = torch.tensor(targets, dtype=torch.long, device=device)
    conn.send("saved")

    def step() -> tuple[float, float, float]:
        if gpu:
            torch.cuda.synchronize()
        start, cpu = time.perf_counter(), time.process_time()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            logits = model(input_ids=t_inputs).logits
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), t_targets.flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        value = loss.item()  # waits for the step, as ours waits for its metrics
        return time.perf_counter() - start, time.process_time() - cpu, value

    while conn.recv() == "step":
        conn.send(step())


def main() -> None:
    args = parse_args()
    reuse_memory(args)  # before jax starts its CPU client's threads

    import gin
    import jax
    import jax.numpy as jnp
    import numpy as np

    from next_jax.models import get_preset
    from next_jax.models.hf import load_pretrained
    from next_jax.models.hf_config import to_hf_config
    from next_jax.train.flops import measure_matmul_flops
    from next_jax.train.optimizers import make_optimizer
    from next_jax.train.trainer import Trainer

    gpu = args.device == "gpu"
    if gpu:
        jax.config.update("jax_platforms", "cuda")
        jax.config.update("jax_default_matmul_precision", JAX_MATMUL_PRECISION[args.matmul_precision])
    gin.bind_parameter("next_jax.models.DecoderConfig.attention_impl", args.attention)

    preset = get_preset(args.preset)
    batch = random_next_token_batch(preset.vocab_size, args.batch, args.seq_len)
    inputs, targets = batch["decoder_input_tokens"], batch["decoder_target_tokens"]

    context = multiprocessing.get_context("spawn")
    conn, child_conn = context.Pipe()
    with tempfile.TemporaryDirectory() as tmp:
        worker = context.Process(
            target=torch_worker,
            args=(child_conn, to_hf_config(preset), tmp, inputs, targets, args),
            daemon=True,
        )
        worker.start()
        if conn.recv() != "saved":
            raise RuntimeError("the PyTorch worker did not save its model")
        model, _ = load_pretrained(
            tmp, dtype=jnp.bfloat16 if args.bf16 else jnp.float32, param_dtype=jnp.float32, with_vocab=False
        )

    def torch_step() -> tuple[float, float, float]:
        conn.send("step")
        return conn.recv()

    try:
        # The ceiling is a square matmul in the activation dtype, at the precision the step uses.
        ceiling_dtype = jnp.bfloat16 if args.bf16 and gpu else jnp.float32
        ceiling_dim = 8192 if gpu else 4096
        ceiling = measure_matmul_flops(dim=ceiling_dim, dtype=ceiling_dtype, repeats=2)
        trainer = Trainer(
            model,
            optimizer=make_optimizer("adamw", LR, weight_decay=0.0),
            learning_rate=LR,
            num_microbatches=args.microbatches,
            peak_flops=ceiling,
        )
        start = time.perf_counter()
        trainer.compiled_step(batch)
        compile_s = time.perf_counter() - start
        # One warm-up step each (buffer allocation, oneDNN primitive caches); both then time the same
        # steps 2.., so the two loss columns below line up.
        trainer.train_step(batch)
        torch_step()
        ours, theirs, ours_cpu, theirs_cpu, our_losses, their_losses, ceilings = [], [], [], [], [], [], []
        # Interleaved (ceiling, ours, theirs) rounds: all three see the same machine load, which matters on
        # a shared host. Step times are medians; the ceiling is the best round.
        for _ in range(args.steps):
            ceilings.append(measure_matmul_flops(dim=ceiling_dim, dtype=ceiling_dtype, repeats=1))
            cpu = time.process_time()
            m = trainer.train_step(batch)
            ours_cpu.append(time.process_time() - cpu)
            ours.append(m["step_time_s"])
            our_losses.append(m["loss"])
            seconds, cpu_seconds, loss = torch_step()
            theirs.append(seconds)
            theirs_cpu.append(cpu_seconds)
            their_losses.append(loss)
    finally:
        conn.send("stop")
        worker.join(timeout=30)
        if worker.is_alive():
            worker.kill()

    ours_s, theirs_s = float(np.median(ours)), float(np.median(theirs))
    speedup = theirs_s / ours_s
    cpu_speedup = float(np.median(theirs_cpu) / np.median(ours_cpu))
    ceiling = max(ceilings + [ceiling])
    step_flops = trainer.step_flops(args.batch, args.seq_len)
    mfu = step_flops / ours_s / ceiling
    tokens = args.batch * args.seq_len
    precision = "bf16 activations / f32 params (torch autocast bf16)" if args.bf16 else "float32"
    if gpu:
        precision += f", matmul precision {args.matmul_precision}"
    print(
        f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, {os.cpu_count()} threads; "
        f"XLA_FLAGS='{os.environ.get('XLA_FLAGS', '')}'; host_memory.reuse_freed_memory: "
        f"{'off' if args.no_reuse_memory else 'on'} (both sides)"
    )
    print(
        f"model: {args.preset} ({trainer.num_params / 1e6:.1f}M params, attention {model.config.attention_impl}), "
        f"batch {args.batch} x {args.seq_len}, AdamW, {precision}"
    )
    print(
        f"matmul ceiling (XLA {jnp.dtype(ceiling_dtype).name} {ceiling_dim}^3, best of {len(ceilings) + 1}): "
        f"{ceiling / 1e9:.1f} GFLOP/s; model FLOPs per step: {step_flops / 1e12:.3f} TFLOP "
        f"(at the ceiling: {step_flops / ceiling:.4g} s)"
    )
    print(
        f"next_jax Trainer step:   {ours_s:7.4f} s  {tokens / ours_s:8.1f} tokens/s  MFU {mfu:.1%}  "
        f"(compile {compile_s:.1f} s; steps {', '.join(f'{t:.3g}' for t in ours)}; "
        f"CPU seconds median {np.median(ours_cpu):.2f})"
    )
    print(
        f"PyTorch step:            {theirs_s:7.4f} s  {tokens / theirs_s:8.1f} tokens/s  "
        f"MFU {step_flops / theirs_s / ceiling:.1%}  "
        f"(steps {', '.join(f'{t:.3g}' for t in theirs)}; CPU seconds median {np.median(theirs_cpu):.2f})"
    )
    print(
        f"losses ours {', '.join(f'{x:.4f}' for x in our_losses)} | torch {', '.join(f'{x:.4f}' for x in their_losses)}"
    )
    print(
        f"speed-up (torch time / ours, medians): {speedup:.2f}x  (best rounds {min(theirs) / min(ours):.2f}x, "
        f"CPU seconds {cpu_speedup:.2f}x)  target >= {SPEED_TARGET}x: "
        f"{'PASS' if speedup >= SPEED_TARGET else 'FAIL'}"
    )
    print(f"MFU: {mfu:.1%}  target >= {MFU_TARGET:.0%}: {'PASS' if mfu >= MFU_TARGET else 'FAIL'}")


if __name__ == "__main__":
    main()
