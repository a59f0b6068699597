"""Data-pipeline figures: SeqIO throughput with traces computed, the trace cache's effect, prompt-length fit.

    .venv/bin/python benchmarks/data_pipeline.py [--root out/data] [--examples 200] [--sp_vocab 4000]

1. Examples/s of `next_mbpp_r` (traces from the sandboxed pool) and `next_synthetic` (in-process tracer)
   through `seqio.get_dataset` + `DecoderFeatureConverter`, for a first epoch (cold trace cache) and a second
   (warm), next to the `_notrace` variant of the same task as the named peer. Target: epoch 2 >= 10x epoch 1.
2. Share of MBPP-R prompts that fit 2,048 tokens with their full traces (no budget action) for `inline` vs
   `scratchpad`, counted in bytes (seqio.ByteVocabulary) and in a SentencePiece vocabulary trained here on
   MBPP text (the paper used PaLM 2's tokenizer and reports about 95% vs 60%).

MBPP-R comes from `--root` (built by launch/build_mbpp_r.py); without one, a small MBPP-R is built here by
mutation from the validation problems.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import gin
import sentencepiece as spm
import seqio

from next_jax.data import mbpp_r
from next_jax.data.example import read_examples, write_examples
from next_jax.data.prompts import build_prompt
from next_jax.data.readers import default_data_dir, read_mbpp
from next_jax.execution.pool import VerificationPool

BUDGET = 2048


def _examples(root: Path | None, n: int, workdir: Path) -> list:
    if root is not None and (root / "mbpp_r" / "validation.jsonl").exists():
        exs = read_examples(root / "mbpp_r" / "validation.jsonl") + read_examples(
            root / "mbpp_r" / "train.jsonl"
        )
    else:
        problems = read_mbpp(default_data_dir() / "mbpp" / "mbpp.jsonl").records
        with VerificationPool(workers=2, timeout=10.0) as pool:
            built = mbpp_r.build_mbpp_r(
                problems,
                mbpp_r.MutatedBugs(per_problem=12),
                pool,
                splits={"validation": (511, 600)},
                cap_per_problem=4,
            )
        exs = built.splits["validation"]
    random.Random(0).shuffle(exs)
    return exs[:n]


def _epoch(task: str, split: str) -> tuple[int, float]:
    ds = seqio.get_dataset(
        task,
        task_feature_lengths={"inputs": 8192, "targets": 1024},
        dataset_split=split,
        shuffle=False,
        feature_converter=seqio.DecoderFeatureConverter(pack=False),
        batch_size=None,
    )
    t = time.perf_counter()
    n = sum(1 for _ in ds.as_numpy_iterator())
    return n, time.perf_counter() - t


def throughput(task: str, split: str) -> None:
    from next_jax.data import rendering
    from tasks import sources

    rendering._caches.clear()  # a cold, memory-only trace cache for epoch 1
    if "synthetic" in task:
        sources.synthetic_examples(split)  # generate outside the timed epochs (cached per process)
    _epoch(f"{task}_notrace", split)  # warm-up: TF graph building and first-use costs, untimed
    n0, t_peer = _epoch(f"{task}_notrace", split)
    n1, t1 = _epoch(task, split)
    n2, t2 = _epoch(task, split)
    assert n0 == n1 == n2, (n0, n1, n2)
    print(f"{task} ({split}, {n1} examples):")
    print(f"  peer {task}_notrace : {n0 / t_peer:8.1f} examples/s")
    print(f"  epoch 1 (cold cache): {n1 / t1:8.1f} examples/s")
    # The 10x target is for traces from the sandboxed pool (MBPP-R). The synthetic set traces in-process, where
    # epoch 1 is already close to the no-trace peer, so a cache cannot be 10x there: print the bound instead.
    target = (
        "target >= 10x"
        if "synthetic" not in task
        else f"in-process tracer: at most {t1 / t_peer:.1f}x possible"
    )
    print(
        f"  epoch 2 (warm cache): {n2 / t2:8.1f} examples/s   -> {t1 / t2:.1f}x faster than epoch 1 "
        f"({target}); {t2 / t_peer:.2f}x the no-trace peer's time"
    )


def _train_sp(workdir: Path, vocab_size: int) -> spm.SentencePieceProcessor:
    problems = read_mbpp(default_data_dir() / "mbpp" / "mbpp.jsonl").records
    corpus = [p.text + "\n" + p.code + "\n" + "\n".join(p.tests) for p in problems]
    prefix = workdir / "mbpp_sp"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        num_threads=2,
        minloglevel=2,
        split_by_whitespace=False,
        remove_extra_whitespaces=False,
        user_defined_symbols=["\n", "    "],
    )
    return spm.SentencePieceProcessor(model_file=str(prefix) + ".model")


def fit_share(examples: list, sp: spm.SentencePieceProcessor) -> None:
    from next_jax.data.rendering import trace_cache
    from tasks.sources import repair_data_config

    tracer = trace_cache(repair_data_config(), trusted=False)
    counters = {"bytes": lambda s: len(s.encode("utf-8")), "sentencepiece": lambda s: len(sp.encode(s))}
    print(
        f"MBPP-R prompts fitting {BUDGET} tokens with all their traces ({len(examples)} examples; "
        f"paper: ~95% inline vs ~60% scratchpad):"
    )
    for vocab, count in counters.items():
        row = []
        for fmt in ("inline", "scratchpad", "none"):
            full = [build_prompt(e, fmt, tracer=tracer, count_tokens=count) for e in examples]
            fits = sum(p.tokens <= BUDGET for p in full) / len(full)
            budgeted = [
                build_prompt(e, fmt, tracer=tracer, budget=BUDGET, count_tokens=count) for e in examples
            ]
            after = sum(p.fits for p in budgeted) / len(budgeted)
            med = statistics.median(p.tokens for p in full)
            row.append(
                f"{fmt}: {100 * fits:5.1f}% (median {med:.0f} tok; {100 * after:5.1f}% after budget actions)"
            )
        print(f"  {vocab:13s} " + " | ".join(row))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--root", type=Path, default=None, help="data root holding mbpp_r/ (launch/build_mbpp_r.py)"
    )
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--synthetic", type=int, default=300)
    ap.add_argument("--sp_vocab", type=int, default=4000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        examples = _examples(args.root, args.examples, workdir)
        write_examples(workdir / "mbpp_r" / "validation.jsonl", examples)
        write_examples(workdir / "mbpp_r" / "train.jsonl", [])
        import tasks  # noqa: F401  (registers the tasks)

        gin.parse_config(
            [
                f"repair_data_config.root = '{workdir}'",
                "repair_data_config.trace_cache_dir = ''",
                f"repair_data_config.synthetic_validation_size = {args.synthetic}",
                f"repair_data_config.prompt_budget = {BUDGET}",
            ]
        )
        throughput("next_mbpp_r", "validation")
        throughput("next_synthetic", "validation")
        fit_share(examples, _train_sp(workdir, args.sp_vocab))


if __name__ == "__main__":
    main()
