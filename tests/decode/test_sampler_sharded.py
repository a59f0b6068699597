"""The sampler on 8 simulated CPU devices gives the same completions as on one device."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

WORKER = os.path.join(os.path.dirname(__file__), "sharded_sampler_worker.py")


@pytest.fixture(scope="module")
def results() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run([sys.executable, WORKER], capture_output=True, text=True, timeout=500, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mesh", ["data8", "fsdp2_model4"])
def test_sharded_sampling_equals_single_device(results, mesh):
    single, sharded = results["single"], results[mesh]
    assert sharded["param_devices"] == 8 and single["param_devices"] == 1
    assert sharded["greedy"] == single["greedy"]
    np.testing.assert_allclose(sharded["greedy_logprobs"], single["greedy_logprobs"], atol=1e-5)
    assert sharded["sampled"] == single["sampled"]
