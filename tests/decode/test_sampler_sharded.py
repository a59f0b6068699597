"""The sampler on 8 simulated CPU devices gives the same completions as on one device."""

import os

import numpy as np
import pytest

WORKER = os.path.join(os.path.dirname(__file__), "sharded_sampler_worker.py")


@pytest.fixture(scope="module")
def results(run_device_worker) -> dict:
    return run_device_worker(WORKER, timeout=500)


@pytest.mark.parametrize("mesh", ["data8", "fsdp2_model4"])
def test_sharded_sampling_equals_single_device(results, mesh):
    single, sharded = results["single"], results[mesh]
    assert sharded["param_devices"] == 8 and single["param_devices"] == 1
    assert sharded["greedy"] == single["greedy"]
    np.testing.assert_allclose(sharded["greedy_logprobs"], single["greedy_logprobs"], atol=1e-5)
    assert sharded["sampled"] == single["sampled"]
