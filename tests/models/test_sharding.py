"""Same logits on a (fsdp=2, model=4) mesh of 8 simulated CPU devices as on one device, per family.

The device count is fixed when jax initialises, so the check runs in a fresh interpreter
(`sharding_worker.py`) with `--xla_force_host_platform_device_count=8`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("sharding_worker.py")
FAMILIES = ("palm", "llama", "qwen2", "gemma")


@pytest.fixture(scope="module")
def report(run_device_worker) -> dict:
    return run_device_worker(WORKER, timeout=540)


@pytest.mark.parametrize("family", FAMILIES)
def test_sharded_logits_equal_single_device_logits(report, family):
    result = report[family]
    assert result["full_diff"] < 1e-5, result
    assert result["cached_diff"] < 1e-5, result


@pytest.mark.parametrize("family", FAMILIES)
def test_parameters_and_activations_are_really_sharded(report, family):
    result = report[family]
    # FSDP on the embed dim, tensor parallelism on heads / mlp / vocab
    assert result["q_spec"] == ["fsdp", "model", None], result
    assert result["q_shard_shape"][:2] == [16, 1]  # embed 32 / 2, heads 4 / 4
    assert result["gate_spec"] == ["fsdp", "model"]
    assert result["embedding_spec"] == ["model", "fsdp"]
    # 1 or 2 KV heads do not divide the 4-way model axis: replicated over it, still FSDP-sharded
    assert result["k_spec"] == ["fsdp", None, None]
    # batch over data x fsdp (XLA may drop the size-1 data axis from the outputs' specs)
    batch_axes = ("fsdp", ["data", "fsdp"])
    assert result["logits_spec"][0] in batch_axes and result["logits_spec"][1:] == [None, "model"]
    assert result["cache_k_spec"][0] in batch_axes and result["cache_k_spec"][1:] == [None, None, None]


def test_sharded_creation_matches_single_device_init(report):
    assert report["create_sharded"]["max_diff"] == 0.0
    assert report["create_sharded"]["gate_spec"] == ["fsdp", "model"]
