"""MBPP-R from model samples: the `decode.Sampler`-backed proposer and the gin-configured build end to end.

The proposer lives in `next_jax.selftrain.text_sampler` (data code imports no jax). The `tiny` preset has random weights, so its samples are noise: the build must report every
one of them as dropped, keep nothing, and still write its outputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import seqio
from flax import nnx

from next_jax.data.readers import default_data_dir
from next_jax.decode.sampler import Sampler
from next_jax.models.registry import build_model, get_preset
from next_jax.selftrain.mbpp_solutions import sampled_solutions
from next_jax.selftrain.text_sampler import TextSampler
from next_jax.train.checkpoints import save_params

ROOT = Path(__file__).resolve().parents[2]
VOCAB = seqio.ByteVocabulary()
BUCKETS = (16, 32, 64)


@pytest.fixture(scope="module")
def data_dir() -> Path:
    d = default_data_dir()
    if not (d / "mbpp" / "mbpp.jsonl").exists():
        pytest.skip(f"public data not found under {d} (set NEXT_JAX_DATA)")
    return d


@pytest.fixture(scope="module")
def tiny_sampler() -> Sampler:
    model = build_model(get_preset("tiny", vocab_size=VOCAB.vocab_size), seed=1)
    return Sampler(model, eos_id=VOCAB.eos_id, pad_id=VOCAB.pad_id, length_buckets=BUCKETS)


def _direct(sampler: Sampler, prompt: str, num_samples: int, seed: int, keep_last: int = 10**9) -> list[str]:
    """What the proposer should return for one prompt: the sampler's tokens cut at EOS, decoded."""
    out = sampler.sample(
        [VOCAB.encode(prompt)[-keep_last:]],
        num_samples=num_samples,
        max_new_tokens=12,
        temperature=1.0,
        seed=seed,
    )
    texts = []
    for row in out.completions()[0]:
        row = row[: row.index(VOCAB.eos_id)] if VOCAB.eos_id in row else row
        texts.append(bytes(t - 3 for t in row if t >= 3).decode("utf-8", errors="ignore"))
    return texts


def test_proposer_decodes_samples_per_prompt_with_a_seed_per_call(tiny_sampler):
    prompts = ["def f(x):", "assert g(2) == 4\n```python\n", "x" * 40]
    proposer = TextSampler(
        tiny_sampler,
        VOCAB,
        max_new_tokens=12,
        temperature=1.0,
        top_p=1.0,
        prompts_per_call=1,
        max_prompt_tokens=16,
    )
    got = proposer.generate(prompts, 3)
    assert [len(row) for row in got] == [3, 3, 3]
    # call i samples prompt i with seed i; the 40-byte prompt keeps its last 16 tokens
    assert got[0] == _direct(tiny_sampler, prompts[0], 3, seed=0)
    assert got[1] == _direct(tiny_sampler, prompts[1], 3, seed=1, keep_last=16)
    assert got[2] == _direct(tiny_sampler, prompts[2], 3, seed=2, keep_last=16)
    assert len(set(got[0])) > 1  # temperature 1: the samples of one prompt differ


def test_sampled_solutions_loads_saved_params_and_checks_the_vocabulary(tmp_path, tiny_sampler):
    trained = build_model(get_preset("tiny", vocab_size=VOCAB.vocab_size), seed=1)
    save_params(tmp_path / "params", nnx.state(trained, nnx.Param))
    kwargs = dict(max_new_tokens=12, temperature=1.0, top_p=1.0, max_prompt_tokens=64)
    loaded = sampled_solutions(
        preset="tiny",
        preset_overrides={"vocab_size": VOCAB.vocab_size},
        params_checkpoint=str(tmp_path / "params"),
        vocabulary=VOCAB,
        dtype="float32",
        init_seed=7,  # overwritten by the checkpoint
        length_buckets=BUCKETS,
        **kwargs,
    )
    direct = TextSampler(tiny_sampler, VOCAB, **kwargs)
    assert loaded.generate(["def f(x):"], 2) == direct.generate(["def f(x):"], 2)
    with pytest.raises(ValueError, match="does not fit"):
        sampled_solutions(preset="tiny", vocabulary=VOCAB, dtype="float32")  # 259 ids, 256 embeddings
    with pytest.raises(ValueError, match="hf_checkpoint or preset"):
        sampled_solutions(vocabulary=VOCAB)


def test_sampled_build_end_to_end_with_the_tiny_preset(tmp_path, data_dir):
    out = tmp_path / "out"
    env = dict(os.environ, NEXT_JAX_DATA=str(data_dir), JAX_PLATFORMS="cpu")
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "launch" / "build_mbpp_r.py"),
            "--gin_file=gin/data/mbpp_r_sampled_tiny.gin",
            f"--out={out}",
            f"--data={data_dir}",
            "--no_traces",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    stats = json.loads((out / "mbpp_r" / "stats.json").read_text())
    # the tiny gin file: train problems 601-602, validation 511, 2 samples each
    offered = {"train": 4, "validation": 2}
    for split, n in offered.items():
        s = stats[split]
        assert s["examples"] == 0 and sum(s["dropped"].values()) == n, s
        # noise never parses as a solution defining the entry point; were one to pass, it is dropped too
        assert set(s["dropped"]) <= {
            "unparsable:parse_missing_entry_point",
            "unparsable:parse_truncated",
            "unparsable:parse_no_code",
            "unparsable:parse_empty",
            "duplicate",
            "pass",
        }
        assert (out / "mbpp_r" / f"{split}.jsonl").read_text() == ""
    assert "sampled_solutions.preset = 'tiny'" in stats["gin"]
    assert "kept no examples" in done.stderr and not (out / "tfds").exists()
