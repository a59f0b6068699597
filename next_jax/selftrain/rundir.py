"""The run directory: layout, completed stages (`state.json`), atomic writes and the stored config.

Layout (see `../shared/DESIGN.md`): `config.gin`, `state.json`, `data/`, `base/`, `control/`, `iter_K/` with
`samples/` and `verdicts/` shards, `kept.jsonl`, `checkpoints/`, `eval/`, `metrics.json`; `summary.json`,
`tensorboard/`, `report.html`, `fix_rate.png`. Every file is written under a temporary name and renamed when
complete; `state.json` is written last, atomically, so a run killed at any moment resumes from the last
completed stage (and, inside sampling, from the last completed shard).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


class ConfigMismatchError(RuntimeError):
    """A run directory was started with another configuration."""


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same directory and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


class RunDir:
    """A self-training run directory and its completed-stage record."""

    def __init__(self, root: str | Path, *, label: str | None = None, orbax_root: str | None = None) -> None:
        self.root = Path(root).resolve()  # orbax wants absolute checkpoint paths
        # Where orbax writes when not under `root`: a URL run directory's remote (`run_mirror.orbax_location`).
        self.orbax_root = orbax_root.rstrip("/") if orbax_root else None
        # How messages and the summary name the run: a URL's, not its local cache's, when `root` is one.
        self.label = label or str(self.root)
        self.name = self.label.rstrip("/").rsplit("/", 1)[-1]
        self.root.mkdir(parents=True, exist_ok=True)
        self._state_path = self.root / "state.json"
        self._done: dict[str, Any] = {}
        self.reload()

    def reload(self) -> None:
        """Re-read `state.json` (processes other than 0 do after each stage: only process 0 writes it)."""
        if self._state_path.exists():
            self._done = json.loads(self._state_path.read_text(encoding="utf-8")).get("completed", {})

    # -- stages ---------------------------------------------------------------------------------------
    def done(self, stage: str) -> bool:
        return stage in self._done

    def result(self, stage: str) -> Any:
        """What `complete(stage, result)` recorded."""
        return self._done[stage]

    def complete(self, stage: str, result: Any = None) -> None:
        """Record `stage` as complete (with a small JSON result), atomically."""
        self._done[stage] = result
        atomic_write_json(self._state_path, {"completed": self._done})

    @property
    def completed(self) -> list[str]:
        return list(self._done)

    # -- layout ---------------------------------------------------------------------------------------
    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def checkpoint_path(self, *parts: str) -> str:
        """Where orbax writes `parts` (`NAME/checkpoints`, `NAME/params`, `best/params`) and restores them from:
        on the remote itself for a URL run directory orbax can write (every host writes its pieces there, so
        hosts need no shared filesystem), else in the run directory. Every orbax path of a run comes from here."""
        if self.orbax_root is None:
            return str(self.root.joinpath(*parts))
        return "/".join([self.orbax_root, *parts])

    def iteration(self, k: int) -> Path:
        return self.root / f"iter_{k}"

    # -- config ---------------------------------------------------------------------------------------
    def check_config(self, config_text: str, allow_change: bool = False, write: bool = True) -> None:
        """Store the run's config on first use (if `write`: process 0 only); refuse a different one later unless
        `allow_change`."""
        path = self.root / "config.gin"
        if path.exists():
            old = path.read_text(encoding="utf-8")
            if old != config_text:
                if not allow_change:
                    raise ConfigMismatchError(
                        f"{self.label} was started with another configuration (see {path}); resume with the same "
                        "gin files and flags, use a new --run_dir, or pass --gin.ALLOW_CONFIG_CHANGE=True"
                    )
                if write:
                    atomic_write_text(self.root / "config.previous.gin", old)
        if write:
            atomic_write_text(path, config_text)


def shard_name(process_index: int, shard: int) -> str:
    """File name of one shard; it carries the process index so hosts never write the same file."""
    return f"shard-p{process_index:03d}-{shard:05d}.jsonl.gz"


def shard_order(name: str) -> tuple[int, int]:
    """(shard, process index) of a `shard_name`: the order of the shards whichever process wrote them."""
    _, process, shard = name.split(".")[0].split("-")
    return int(shard), int(process[1:])
