"""`launch/compile_check.py` with the real TPU compiler (libtpu, no TPU): a small preset compiles and fits a
v5e:2x2 slice with compiled FLOPs near the formula; a model too big for it is reported as not fitting.

Each check runs in its own process (gin and libtpu state are per process) under a file lock, so two pytest
workers never compile at once (libtpu is one process at a time, and the compiles need memory)."""

from __future__ import annotations

import fcntl
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("libtpu") is None,
    reason="libtpu is not installed (pip install -e '.[tpu]'): no TPU compiler to check fit with",
)
COMMON = [
    "--gin_file=gin/models/tiny.gin",
    "--gin_file=gin/runs/finetune.gin",
    "--topology=v5e:2x2",
]


def compile_check(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the compile check, one at a time across processes."""
    lock = Path(tempfile.gettempdir()) / "next_jax_compile_check.lock"
    with lock.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        return subprocess.run(
            [sys.executable, "launch/compile_check.py", *COMMON, *args],
            cwd=REPO,
            env={k: v for k, v in os.environ.items() if k != "XLA_FLAGS"},
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def test_scanned_small_preset_compiles_and_fits_with_compiled_flops_near_the_formula():
    done = compile_check(
        "--batch=8",
        "--seq=256",
        "--prompt_len=32",
        "--gin.DecoderConfig.scan_layers=True",
        "--gin.DecoderConfig.remat=True",
        "--gin.DecoderConfig.attention_impl='scan'",
        "--gin.create_mesh.data=1",
        "--gin.create_mesh.fsdp=4",
        "--gin.Trainer.num_microbatches=2",
        "--gin.sampling_params.max_new_tokens=8",
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "mesh {'data': 1, 'fsdp': 4, 'model': 1}" in out
    assert "in 2 microbatch(es)" in out and "scan_layers=True" in out
    assert out.count(": fits") == 2  # train step and sampler
    compiled = re.search(r"FLOPs per step: compiled ([\d.e+]+) \(([+-][\d.]+)%", out)
    assert compiled is not None, out
    # the tiny model's norms, softmax and loss weigh more against its matmuls than a large model's do
    assert abs(float(compiled.group(2))) < 25


def test_a_model_too_big_for_the_slice_is_reported_as_not_fitting():
    done = compile_check(
        "--batch=8",
        "--seq=128",
        "--gin.DecoderConfig.vocab_size=4000000",
        "--gin.DecoderConfig.embed_dim=1024",
        "--skip_sampler",
        "--no_flop_count",
    )
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "train step: DOES NOT FIT" in done.stdout
    consumers = re.search(r"largest consumers: (.*)", done.stdout)
    assert consumers is not None and "parameters (f32) 30.52 GiB" in consumers.group(1)


def test_a_batch_the_mesh_cannot_split_is_a_usage_error():
    done = compile_check("--batch=6", "--seq=128", "--gin.create_mesh.data=1", "--gin.create_mesh.fsdp=4",
                         "--skip_sampler", "--no_flop_count")
    assert done.returncode == 2 and "--batch 6 is not a multiple of data x fsdp (4)" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
