"""Shared fixtures of the data tests: the public data directory and one verification pool per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from next_jax.data.readers import default_data_dir


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = default_data_dir()
    if not (d / "mbpp" / "mbpp.jsonl").exists():
        pytest.skip(f"public data not found under {d} (set NEXT_JAX_DATA)")
    return d


@pytest.fixture(scope="session")
def pool():
    from next_jax.execution.pool import VerificationPool

    with VerificationPool(workers=2, timeout=10.0) as p:
        yield p
