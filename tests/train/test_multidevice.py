"""Sharded training on 8 simulated CPU devices (a subprocess, since the device count is fixed when jax
starts): a (fsdp=2, model=4) mesh gives the same losses as one device, and checkpoints move between meshes."""

import os

import pytest

WORKER = os.path.join(os.path.dirname(__file__), "multidevice_worker.py")


@pytest.fixture(scope="module")
def results(run_device_worker) -> dict:
    return run_device_worker(WORKER, timeout=500)


@pytest.mark.parametrize("optimizer", ["adafactor", "adamw"])
def test_fsdp_tensor_parallel_losses_equal_single_device(results, optimizer):
    assert results["num_devices"] == 8
    single, sharded = results[f"{optimizer}_single_losses"], results[f"{optimizer}_sharded_losses"]
    assert len(single) == 3
    assert sharded == pytest.approx(single, rel=2e-5)
    assert single[-1] < single[0]
    assert results[f"{optimizer}_param_max_diff"] < 1e-4


def test_parameters_and_optimizer_state_are_really_sharded(results):
    # q kernel [embed=32, heads=4, head_dim=8]: embed over fsdp (2), heads over model (4).
    assert results["q_spec"] == ["fsdp", "model", "None"]
    assert results["q_shard_shape"] == [16, 1, 8]
    assert results["opt_state_sharded"]


@pytest.mark.parametrize("target", ["data8", "single"])
def test_checkpoint_restores_onto_a_different_mesh(results, target):
    assert results[f"restore_{target}_step"] == 3
    assert results[f"restore_{target}_diff"] == 0.0
    assert results[f"restore_{target}_devices"] == (8 if target == "data8" else 1)
    assert results[f"restore_{target}_next_loss"] == pytest.approx(results["saved_next_loss"], rel=2e-5)
