"""Orbax checkpointing: a thin `CheckpointManager` wrapper plus params-only save/restore.

A training checkpoint holds two items: `state` (any pytree of arrays, e.g. a `TrainState`) and `meta`
(JSON: data position, config text, ...). Restoring takes a *target*, a pytree of arrays or
`jax.ShapeDtypeStruct`s carrying `.sharding`; orbax reads each array straight into that sharding, which is
how a checkpoint written on one mesh is restored onto another.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

STATE_ITEM = "state"
META_ITEM = "meta"


def abstract_tree(tree: Any) -> Any:
    """Replace every array in `tree` by a `ShapeDtypeStruct` that keeps its shape, dtype and sharding."""

    def to_struct(x):
        if isinstance(x, jax.ShapeDtypeStruct):
            return x
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None))

    return jax.tree.map(to_struct, tree)


def with_shardings(tree: Any, shardings: Any) -> Any:
    """`ShapeDtypeStruct`s of `tree` placed on `shardings` (a matching pytree of `jax.sharding.Sharding`)."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


class CheckpointManager:
    """Keeps the last `max_to_keep` checkpoints of a run under `directory`, saving asynchronously.

    `save` returns as soon as the arrays are copied off the device; writing goes on in the background
    and a step becomes visible to `latest_step` only once it is complete on disk (orbax writes to a
    temporary name and renames), so a crash mid-save leaves the previous step to resume from.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        max_to_keep: int | None = 3,
        save_interval_steps: int = 1,
        async_save: bool = True,
    ):
        self.directory = os.fspath(directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            save_interval_steps=save_interval_steps,
            enable_async_checkpointing=async_save,
            create=True,
        )
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=(STATE_ITEM, META_ITEM)
        )

    def save(self, step: int, state: Any, *, metadata: dict | None = None, force: bool = False) -> bool:
        """Start saving `state` at `step`; False if the save interval skipped it."""
        args = ocp.args.Composite(
            **{STATE_ITEM: ocp.args.StandardSave(state), META_ITEM: ocp.args.JsonSave(metadata or {})}
        )
        return self._manager.save(step, args=args, force=force)

    def latest_step(self) -> int | None:
        """The newest complete step, or None when there is none."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """Complete steps on disk, oldest first."""
        return sorted(self._manager.all_steps())

    def restore(self, target: Any, step: int | None = None) -> tuple[Any, dict]:
        """(state, metadata) at `step` (default: latest), each array laid out as in `target`."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint under {self.directory}")
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                **{
                    STATE_ITEM: ocp.args.StandardRestore(abstract_tree(target)),
                    META_ITEM: ocp.args.JsonRestore(),
                }
            ),
        )
        return restored[STATE_ITEM], dict(restored[META_ITEM] or {})

    def wait_until_finished(self) -> None:
        """Block until background saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Finish pending saves and release the manager's threads."""
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> CheckpointManager:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _location(directory: str | os.PathLike) -> str:
    """An absolute path (orbax wants one), or a URL (`gs://...`) as it is."""
    directory = os.fspath(directory)
    return directory if "://" in directory else os.path.abspath(directory)


def exists(directory: str | os.PathLike) -> bool:
    """Whether `directory` (a path or a URL orbax reads, e.g. `gs://...`) exists."""
    from etils import epath

    return epath.Path(_location(directory)).exists()


def remove(directory: str | os.PathLike) -> None:
    """Delete `directory` (a path or a URL) and everything in it, if it exists."""
    from etils import epath

    path = epath.Path(_location(directory))
    if path.exists():
        path.rmtree()


def save_params(directory: str | os.PathLike, params: Any) -> None:
    """Write a params pytree (e.g. a converted HF checkpoint) as one orbax checkpoint at `directory`."""
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(_location(directory), params)
        checkpointer.wait_until_finished()


def restore_params(directory: str | os.PathLike, target: Any) -> Any:
    """Read a `save_params` checkpoint into the shapes, dtypes and shardings of `target`.

    Also accepts the `state` item of a training checkpoint step directory holding a bare params tree.
    """
    with ocp.StandardCheckpointer() as checkpointer:
        return checkpointer.restore(_location(directory), abstract_tree(target))
