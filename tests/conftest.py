"""Fixtures shared by every test area."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run_device_worker(worker: str | os.PathLike, timeout: float = 540) -> dict:
    """Run a multi-device worker script in a fresh interpreter with 8 simulated CPU devices.

    The device count is fixed when jax starts, so it cannot change inside a test process that already imported
    jax. The worker prints one JSON object as its last stdout line; that object is returned.
    """
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, str(worker)], capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def run_device_worker() -> Callable[..., dict]:
    return _run_device_worker
