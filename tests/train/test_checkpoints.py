"""Orbax checkpoint manager: async save, keep-N, restore latest, params-only checkpoints."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from next_jax.train.checkpoints import CheckpointManager, abstract_tree, restore_params, save_params
from next_jax.train.train_step import TrainState


def make_state(value: float) -> TrainState:
    params = {"dense": {"kernel": jnp.full((4, 3), value), "bias": jnp.arange(3.0)}}
    opt = optax.adamw(1e-3)
    return TrainState(step=jnp.asarray(int(value), jnp.int32), params=params, opt_state=opt.init(params))


def test_keeps_last_n_and_restores_latest(tmp_path):
    with CheckpointManager(tmp_path, max_to_keep=2, async_save=True) as manager:
        for step in range(1, 5):
            assert manager.save(step, make_state(float(step)), metadata={"seen": step * 10})
        manager.wait_until_finished()
        assert manager.all_steps() == [3, 4]
        assert manager.latest_step() == 4
        restored, meta = manager.restore(make_state(0.0))
        assert meta == {"seen": 40}
        assert int(restored.step) == 4
        np.testing.assert_array_equal(restored.params["dense"]["kernel"], np.full((4, 3), 4.0))
        assert jax.tree.structure(restored) == jax.tree.structure(make_state(0.0))
        older, _ = manager.restore(make_state(0.0), step=3)
        assert float(older.params["dense"]["kernel"][0, 0]) == 3.0
    # A new manager over the same directory (a restarted process) sees the same steps.
    reopened = CheckpointManager(tmp_path, max_to_keep=2)
    assert reopened.latest_step() == 4
    reopened.close()


def test_save_interval_skips_steps(tmp_path):
    with CheckpointManager(tmp_path, save_interval_steps=3) as manager:
        saved = [manager.save(step, make_state(float(step))) for step in range(1, 8)]
        manager.wait_until_finished()
        # Orbax always saves the first step it sees (nothing to resume from yet), then multiples of 3.
        assert saved == [True, False, True, False, False, True, False]
        assert manager.all_steps() == [1, 3, 6]
        assert manager.save(7, make_state(7.0), force=True)
        manager.wait_until_finished()
        assert manager.latest_step() == 7


def test_restore_without_checkpoint_raises(tmp_path):
    with CheckpointManager(tmp_path / "empty") as manager, pytest.raises(FileNotFoundError):
        manager.restore(make_state(0.0))


def test_params_round_trip_with_target_dtype_and_shape(tmp_path):
    params = make_state(2.5).params
    save_params(tmp_path / "params", params)
    restored = restore_params(tmp_path / "params", abstract_tree(params))
    jax.tree.map(np.testing.assert_array_equal, restored, params)
