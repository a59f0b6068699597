"""Parse gin files and `--gin.` bindings (T5X conventions), check them against the run directory, run.

Errors a user can fix (a missing gin file, a typo in a binding, a different config on an existing run
directory, a missing data file or checkpoint, a URL run directory whose filesystem is not installed) come out
as `ConfigError` with one clear line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import gin
import jax

from next_jax.parallel import distributed
from next_jax.selftrain import run_mirror
from next_jax.selftrain.rundir import ConfigMismatchError, RunDir


class ConfigError(RuntimeError):
    pass


def parse(gin_files: Sequence[str], bindings: Sequence[str], search_paths: Sequence[str]) -> None:
    import next_jax.selftrain.loop  # noqa: F401  (registers the configurables)
    import tasks  # noqa: F401

    for path in search_paths:
        gin.add_config_file_search_path(path)
    for name in gin_files:
        if not any(Path(p, name).exists() for p in ["", *search_paths]):
            raise ConfigError(f"gin file {name} not found (searched . and {', '.join(search_paths)})")
    try:
        # The default first: a later `--gin.ALLOW_CONFIG_CHANGE=True` rebinds the macro.
        gin.parse_config_files_and_bindings(list(gin_files), ["ALLOW_CONFIG_CHANGE = False", *bindings])
    except (ValueError, KeyError, SyntaxError, OSError) as e:
        raise ConfigError(f"bad gin configuration: {e}") from None


def open_run(run_dir: str, local_cache_dir: str | None) -> tuple[str, run_mirror.RunMirror | None]:
    """(local run directory, mirror or None): a URL is pulled into this process's local cache (one per
    process with several), and the loop runs there with the mirror that pushes it back."""
    if not run_mirror.is_url(run_dir):
        if local_cache_dir:
            raise ConfigError("--local_cache_dir is only for a URL --run_dir (e.g. gs://bucket/run)")
        return run_dir, None
    try:
        mirror = run_mirror.open_mirror(run_dir, local_cache_dir, process_index=jax.process_index(),
                                        process_count=jax.process_count())
        mirror.pull()
    except run_mirror.MirrorError as e:
        raise ConfigError(str(e)) from None
    except OSError as e:  # unreadable remote, no permission, full disk
        raise ConfigError(f"could not pull {run_dir}: {type(e).__name__}: {e}") from None
    distributed.barrier("pull run directory")
    return str(mirror.cache), mirror


def run_from_flags(gin_files: Sequence[str], bindings: Sequence[str], *, search_paths: Sequence[str],
                   run_dir: str | None, local_cache_dir: str | None = None) -> dict:
    from next_jax.selftrain.loop import self_train

    parse(gin_files, bindings, search_paths)
    allow = bool(gin.query_parameter("%ALLOW_CONFIG_CHANGE"))
    if run_dir is None:
        try:
            run_dir = gin.query_parameter("%RUN_DIR")
        except ValueError:
            run_dir = os.path.join("runs", Path(gin_files[-1]).stem)
    config_text = "\n".join(line for line in gin.config_str().splitlines()
                            if not line.startswith("ALLOW_CONFIG_CHANGE"))
    local, mirror = open_run(run_dir, local_cache_dir)
    run = RunDir(local, label=run_dir)
    try:
        run.check_config(config_text, allow_change=allow, write=distributed.is_main())
    except ConfigMismatchError as e:
        raise ConfigError(str(e)) from None
    try:
        return self_train(str(run.root), mirror=mirror)
    except FileNotFoundError as e:
        raise ConfigError(str(e)) from None
