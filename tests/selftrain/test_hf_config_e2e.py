"""A shipped real-model config (Qwen2.5-Coder on MBPP-R + HeFix+) runs one iteration end to end on CPU, with
a tiny random Qwen2 checkpoint written by `save_pretrained` and small MBPP-R-format data files: the HF path
(load, tokenizer, few-shot prompts traced in the sandbox, hard subset, sampling, fine-tuning, export)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def tiny_checkpoint(folder: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from next_jax.models.config import DecoderConfig
    from next_jax.models.hf import save_pretrained
    from next_jax.models.hf_vocab import HfTokenizerVocabulary
    from next_jax.models.registry import build_model

    folder.mkdir(parents=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["def f(x):\n    return x + 1\n", "assert f(1) == 2"] * 10, trainer)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<eos>", "pad_token": "<pad>"}))
    vocab = HfTokenizerVocabulary(folder / "tokenizer.json")
    config = DecoderConfig(family="qwen2", vocab_size=320, num_layers=1, embed_dim=32, num_heads=2, num_kv_heads=1,
                           head_dim=16, mlp_dim=64, qkv_bias=True, tie_embeddings=True, max_len=4096)
    save_pretrained(build_model(config, seed=0), folder, vocab=vocab)


def mbpp_r_files(root: Path) -> None:
    from next_jax.data.example import write_examples
    from next_jax.data.synthetic import generate_synthetic

    examples = generate_synthetic(14, "train", seed=11)
    write_examples(root / "mbpp_r" / "train.jsonl", examples[:6])
    write_examples(root / "mbpp_r" / "validation.jsonl", examples[6:10])
    write_examples(root / "hefix_plus" / "test.jsonl", examples[10:])


def test_qwen_config_runs_one_iteration_from_an_hf_checkpoint(tmp_path):
    checkpoint, data, run_dir = tmp_path / "ckpt", tmp_path / "data", tmp_path / "run"
    tiny_checkpoint(checkpoint)
    mbpp_r_files(data)
    overrides = [
        f"--gin.HF_CHECKPOINT='{checkpoint}'", f"--gin.repair_data_config.root='{data}'",
        "--gin.repair_data_config.trace_cache_dir=''", "--gin.BaseModelSettings.dtype='float32'",
        "--gin.BaseModelSettings.length_buckets=(2048, 4096)", "--gin.self_train.num_iterations=1",
        "--gin.self_train.pool_workers=2", "--gin.SampleSettings.num_samples=2", "--gin.SampleSettings.max_new_tokens=16",
        "--gin.HardSubsetSettings.num_samples=2", "--gin.HardSubsetSettings.threshold=1.1",
        "--gin.FinetuneSettings.steps=2", "--gin.FinetuneSettings.batch_size=2", "--gin.EvalSettings.num_samples=2",
        "--gin.EvalSettings.ks=(1, 2)", "--gin.EvalSettings.max_new_tokens=16",
    ]
    env = {**os.environ}
    env.pop("NEXT_JAX_SELFTRAIN_CRASH_AT", None)
    done = subprocess.run(
        [sys.executable, "launch/self_train.py", "--gin_file=gin/experiments/mbpp_r_qwen2p5_coder_1p5b.gin",
         f"--run_dir={run_dir}", *overrides],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["base"]["problems"] == 4 and summary["base_notrace"]["problems"] == 4
    assert summary["extra_evals"]["base"]["hefix_plus"]["problems"] == 4
    (it,) = summary["iterations"]
    assert it["train"]["problems"] == 6 and it["train"]["samples"] == 12  # threshold 1.1 keeps every problem
    assert it["extra_evals"]["hefix_plus"]["problems"] == 4
    state = json.loads((run_dir / "state.json").read_text())["completed"]
    assert state["hard_subset"]["problems"] == 6
    first = json.loads(gzip.open(run_dir / "iter_0" / "prompts.jsonl.gz", "rt").readline())
    assert first["prompt"].count("### Task") >= 2  # few-shot exemplars precede the problem
    exported = run_dir / "best" / "hf"
    assert (exported / "config.json").exists() and (exported / "tokenizer.json").exists()
    assert json.loads((exported / "config.json").read_text())["model_type"] == "qwen2"
