"""Run directory: completed stages survive a restart, and a different config is refused unless allowed."""

from __future__ import annotations

import json

import pytest

from next_jax.selftrain.rundir import ConfigMismatchError, RunDir, atomic_write_text, shard_name, shard_order


def test_stages_persist_and_state_is_written_atomically(tmp_path):
    run = RunDir(tmp_path / "run")
    assert not run.done("data")
    run.complete("data", {"seconds": 1.5})
    again = RunDir(tmp_path / "run")
    assert again.done("data") and again.result("data") == {"seconds": 1.5}
    assert json.loads((tmp_path / "run" / "state.json").read_text())["completed"]["data"]["seconds"] == 1.5
    assert not list((tmp_path / "run").glob("*.tmp")) and not list((tmp_path / "run").glob(".state*"))


def test_a_different_config_is_refused_unless_allowed(tmp_path):
    run = RunDir(tmp_path)
    run.check_config("a = 1\n")
    run.check_config("a = 1\n")
    with pytest.raises(ConfigMismatchError, match="ALLOW_CONFIG_CHANGE"):
        run.check_config("a = 2\n")
    assert (tmp_path / "config.gin").read_text() == "a = 1\n"
    run.check_config("a = 2\n", allow_change=True)
    assert (tmp_path / "config.gin").read_text() == "a = 2\n"
    assert (tmp_path / "config.previous.gin").read_text() == "a = 1\n"


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "f.txt"
    atomic_write_text(path, "old")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_shard_names_carry_the_process_index():
    assert shard_name(3, 12) == "shard-p003-00012.jsonl.gz"
    assert sorted([shard_name(0, 10), shard_name(0, 9)]) == [shard_name(0, 9), shard_name(0, 10)]


def test_shards_order_by_shard_then_process_whoever_wrote_them():
    names = [shard_name(1, 1), shard_name(0, 2), shard_name(0, 0), shard_name(1, 3), shard_name(0, 10)]
    assert sorted(names, key=shard_order) == [shard_name(0, 0), shard_name(1, 1), shard_name(0, 2), shard_name(1, 3),
                                              shard_name(0, 10)]
    assert shard_order(shard_name(7, 42)) == (42, 7)


def test_a_url_names_the_run_whose_local_cache_it_is(tmp_path):
    run = RunDir(tmp_path / "cache", label="gs://bucket/runs/tiny_cpu_s0/")
    assert run.name == "tiny_cpu_s0" and RunDir(tmp_path / "plain").name == "plain"
    run.check_config("a = 1\n")
    with pytest.raises(ConfigMismatchError, match="^gs://bucket/runs/tiny_cpu_s0/ was started"):
        run.check_config("a = 2\n")
