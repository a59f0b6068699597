"""Sampling throughput: next_jax `Sampler` vs transformers `generate` (PyTorch CPU), same run, same weights.

A random Llama-shaped model (the `small` preset's shape by default) is created in transformers, saved,
and loaded into next_jax, so both sides decode the same float32 network. Two rows, 256-token prompts,
128 new tokens, temperature / top-k / top-p sampling, EOS disabled so that every row produces exactly 128
tokens on both sides:

- `shared`: 8 prompts x 8 samples, the loop's case: our sampler prefills each prompt once and decodes its 8
  samples from that cache, transformers expands each prompt 8 times (24,576 tokens processed against 10,240);
- `distinct`: 64 distinct prompts x 1 sample, the same number of rows and lengths: raw prefill + decoding
  speed, nothing shared.

Prints tokens/s of each side per row (best of `--repeats`, the two sides timed in turns) and the ratios
(targets: shared >= 3x; distinct >= 1.5x on CPU, >= 3x on a GPU).

    .venv/bin/python benchmarks/sampling_vs_hf.py [--preset small] [--repeats 2] [--device cpu|gpu]
        [--dtype float32|bfloat16] [--rows shared,distinct] [--prompts 8 --samples 8]  (--prompts/--samples
        resize the shared row; the distinct row has prompts x samples distinct prompts)

`--device gpu` puts both sides on the first GPU (JAX's CUDA backend, `torch.device("cuda")`; the transformers
side is synchronised before its clock stops). `--dtype bfloat16` runs both networks with bf16 weights and
activations (ours `load_pretrained(dtype=bfloat16)`, theirs `.to(torch.bfloat16)`); float32 by default.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

# XLA:CPU hands only dots to YNNPACK: with its default reduce/elementwise fusions too, the backward pass
# gains slow transposing copies (about 10% more CPU time per step on the `small` preset, measured).
# Must be set before jax starts; an explicit choice in XLA_FLAGS wins.
if "ynn_fusion_type" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT"
    ).strip()

import jax
import jax.numpy as jnp
import numpy as np
import torch
import transformers

from next_jax.decode.sampler import Sampler
from next_jax.models import get_preset
from next_jax.models.hf import load_pretrained
from next_jax.models.hf_config import to_hf_config

TARGETS = {("shared", "cpu"): 3.0, ("shared", "gpu"): 3.0, ("distinct", "cpu"): 1.5, ("distinct", "gpu"): 3.0}


def hf_model_for(preset: str) -> transformers.PreTrainedModel:
    """A randomly initialised transformers Llama with the preset's shape."""
    hf_config = to_hf_config(get_preset(preset))
    torch.manual_seed(0)
    config = transformers.AutoConfig.for_model(**hf_config)
    return transformers.AutoModelForCausalLM.from_config(config).eval()


def time_interleaved(fns, repeats: int) -> list[float]:
    """Best wall time of each of `fns`, run in turns so that a change in machine load hits both sides."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--prompt_len", type=int, default=256)
    parser.add_argument("--new_tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--rows", default="shared,distinct", help="comma-separated: shared, distinct")
    args = parser.parse_args()

    gpu = args.device == "gpu"
    if gpu:  # before jax starts a backend: never fall back to the CPU silently
        jax.config.update("jax_platforms", "cuda")
    device = torch.device("cuda" if gpu else "cpu")
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)  # XLA's CPU client also uses one thread per core
    hf_model = hf_model_for(args.preset)
    with tempfile.TemporaryDirectory() as tmp:
        hf_model.save_pretrained(tmp)  # float32 on disk: both sides cast the same weights
        model, _ = load_pretrained(tmp, dtype=jnp.dtype(args.dtype), with_vocab=False)
    hf_model.to(device=device, dtype=getattr(torch, args.dtype))
    vocab = model.config.vocab_size
    sampler = Sampler(model, eos_id=-1)  # -1: never produced, so every row runs to the length limit
    params = sum(p.numel() for p in hf_model.parameters())
    print(
        f"device: {jax.devices()[0].device_kind} x{jax.device_count()} (torch: {device}), {threads} threads; "
        f"XLA_FLAGS='{os.environ['XLA_FLAGS']}'; model: {args.preset} ({params / 1e6:.1f}M params, {args.dtype})"
    )
    for row in args.rows.split(","):
        if row == "shared":
            num_prompts, samples = args.prompts, args.samples
        elif row == "distinct":
            num_prompts, samples = args.prompts * args.samples, 1
        else:
            raise SystemExit(f"unknown row {row!r}: shared or distinct")
        _run_row(row, sampler, hf_model, device, gpu, vocab, num_prompts, samples, args)


def _run_row(row: str, sampler: Sampler, hf_model, device, gpu: bool, vocab: int, num_prompts: int,
             samples: int, args: argparse.Namespace) -> None:
    """Time one workload on both sides and print its lines."""
    rng = np.random.default_rng(0)
    prompts = rng.integers(3, vocab, (num_prompts, args.prompt_len))
    knobs = dict(temperature=1.0, top_k=50, top_p=0.95)
    new_tokens = num_prompts * samples * args.new_tokens

    def ours():
        out = sampler.sample(list(prompts), num_samples=samples, max_new_tokens=args.new_tokens, seed=0, **knobs)
        assert out.lengths.min() == args.new_tokens

    input_ids = torch.tensor(prompts, dtype=torch.long, device=device)

    def theirs():
        with torch.no_grad():
            out = hf_model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                do_sample=True,
                num_return_sequences=samples,
                max_new_tokens=args.new_tokens,
                min_new_tokens=args.new_tokens,
                eos_token_id=None,
                pad_token_id=0,
                **knobs,
            )
        if gpu:
            torch.cuda.synchronize()
        assert out.shape == (num_prompts * samples, args.prompt_len + args.new_tokens)

    start = time.perf_counter()
    ours()  # compile
    compile_s = time.perf_counter() - start
    if gpu:
        theirs()  # CUDA's first call (kernel loading, allocator) untimed, as our compile is
    load_before = os.getloadavg()[0]
    theirs_s, ours_s = time_interleaved([theirs, ours], args.repeats)
    load_after = os.getloadavg()[0]
    ratio = theirs_s / ours_s
    target = TARGETS[(row, args.device)]
    print(
        f"[{row}] workload: {num_prompts} prompts x {samples} samples, {args.prompt_len}-token prompts, "
        f"{args.new_tokens} new tokens, T={knobs['temperature']} top_k={knobs['top_k']} top_p={knobs['top_p']}; "
        f"1-min load average {load_before:.1f} before, {load_after:.1f} after the timed runs"
    )
    print(
        f"[{row}] next_jax Sampler:      {ours_s:7.2f} s  {new_tokens / ours_s:8.1f} tokens/s  "
        f"(first call incl. compile {compile_s:.1f} s)"
    )
    print(f"[{row}] transformers generate: {theirs_s:7.2f} s  {new_tokens / theirs_s:8.1f} tokens/s")
    print(f"[{row}] ratio (ours / transformers tokens/s): {ratio:.2f}x  target >= {target}x: "
          f"{'PASS' if ratio >= target else 'FAIL'}")


if __name__ == "__main__":
    main()
