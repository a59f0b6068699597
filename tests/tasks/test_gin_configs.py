"""The data gin files bind real parameters of the tasks and of the MBPP-R build script."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import gin

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


def test_mbpp_r_build_gin_parses():
    spec = importlib.util.spec_from_file_location("build_mbpp_r", ROOT / "launch" / "build_mbpp_r.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    gin.clear_config()
    gin.parse_config_file(str(ROOT / "gin" / "data" / "mbpp_r_mutation.gin"))
    cfg = module.build()
    assert isinstance(cfg["bug_source"], mbpp_r.MutatedBugs) and cfg["bug_source"].per_problem == 60
    assert cfg["splits"] == {"train": (601, 974), "validation": (511, 600)} and cfg["cap_per_problem"] == 30
    gin.clear_config()
