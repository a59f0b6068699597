"""Fixtures for the trainer tests (shared helpers live in train_fixtures.py)."""

import pytest
from train_fixtures import TINY

from next_jax.models.config import DecoderConfig


@pytest.fixture(scope="session")
def tiny_config() -> DecoderConfig:
    return TINY
