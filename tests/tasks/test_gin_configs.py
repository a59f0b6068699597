"""The data gin files bind real parameters of the tasks and of the MBPP-R build script."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import gin
import pytest

from next_jax.data import mbpp_r
from tasks.sources import repair_data_config
from tasks.vocabularies import get_vocabulary

ROOT = Path(__file__).resolve().parents[2]


def test_repair_tasks_gin_parses_and_applies(repair_gin):
    gin.clear_config()
    gin.parse_config_file(str(ROOT / "gin" / "data" / "repair_tasks.gin"))
    config = repair_data_config()
    assert config.prompt_budget == 2048 and dict(config.synthetic_sizes) == {"train": 2000, "validation": 200}
    assert get_vocabulary().vocab_size == 256 + 3  # bytes plus pad, eos, unk


@functools.cache
def _build_script():
    """The launch script as a module, loaded once (gin refuses a second registration of its configurables)."""
    spec = importlib.util.spec_from_file_location("build_mbpp_r", ROOT / "launch" / "build_mbpp_r.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mbpp_r_build_gin_parses():
    module = _build_script()
    gin.clear_config()
    gin.parse_config_file(str(ROOT / "gin" / "data" / "mbpp_r_mutation.gin"))
    cfg = module.build()
    assert isinstance(cfg["bug_source"], mbpp_r.MutatedBugs) and cfg["bug_source"].per_problem == 60
    assert cfg["bug_source"].max_order == 2
    assert cfg["splits"] == {"train": (601, 974), "validation": (511, 600)} and cfg["cap_per_problem"] == 30
    gin.clear_config()


def test_mbpp_r_sampled_gin_binds_the_sampler_and_asks_for_a_checkpoint():
    module = _build_script()
    gin.clear_config()
    gin.parse_config_file(str(ROOT / "gin" / "data" / "mbpp_r_sampled.gin"))
    assert gin.query_parameter("mbpp_r.SampledBugs.num_samples") == 32
    assert gin.query_parameter("mbpp_r.mbpp_shots.ids") == (2, 3, 4)
    assert gin.query_parameter("sampled_solutions.temperature") == 0.8
    # no model bound: building the source fails with a message saying what to bind
    with pytest.raises(ValueError, match="hf_checkpoint or preset"):
        module.build()
    gin.clear_config()
