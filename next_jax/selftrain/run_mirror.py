"""Run directories on object storage (`--run_dir=gs://bucket/run`, any fsspec URL): the loop works in a local
cache directory and `RunMirror` copies it from and to the URL.

A mirror rather than writing to the URL directly because the loop's resume guarantees rest on local atomic
renames (`rundir.py`), which object stores lack. The remote is the truth and the cache a disposable copy:
- `pull` (start of a run) makes the cache equal to the remote: it downloads what is missing or differs in size
  (`state.json` and the configs always), and deletes cached files the remote lacks, so a cache left by an
  older attempt, or by a run whose remote was since deleted, cannot resume anything the remote does not hold.
- `push` (after every stage's barrier, on process 0) uploads the files that are new or changed since the last
  pull or push, `state.json` last: the remote never records a stage whose files are not all there.
- `push_file` uploads one completed shard at once, so a killed host loses at most the shard in progress.
- `refresh` (several processes, after the barrier that follows every process's push) downloads what the other
  processes pushed since this cache last saw it. Each process has its own cache: shard files belong to the
  process whose index they carry, every other file to process 0, and a process pushes only its own.
Checkpoints and saved parameters do not pass through the cache where orbax can write to the remote itself
(`orbax_location`: gs://, and file:// as a plain path): every process writes its pieces there, and the mirror
leaves those directories (`orbax_owned`) alone. Elsewhere (one process only) they are mirrored like any file.
Each object is written whole (to a temporary name and renamed on a local filesystem); temporary files
(`*.tmp`, orbax's `*.orbax-checkpoint-tmp-*`) are never pushed. An orbax checkpoint directory (one holding
`_CHECKPOINT_METADATA`) is many files that must appear together: while it is pushed the remote holds a
`.next_jax_partial` marker in it, and `pull` skips a directory with that marker (an interrupted push), so
training restarts from an earlier checkpoint or from scratch rather than from half a checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import uuid
from pathlib import Path
from typing import Any

from next_jax.selftrain.rundir import atomic_write_json

log = logging.getLogger(__name__)

STATE = "state.json"
# Small files that can change without changing size; always downloaded.
REFRESH = frozenset({STATE, "config.gin", "config.previous.gin"})
META = ".next_jax_mirror.json"  # in the cache: the URL it mirrors
PARTIAL = ".next_jax_partial"  # in a remote checkpoint directory while it is being pushed
UNIT_MARKER = "_CHECKPOINT_METADATA"  # orbax writes it into every checkpoint directory
_SHARD_OWNER = re.compile(r"^shard-p(\d{3})-")  # `rundir.shard_name`: shards carry their writer's index
# Directories of orbax's own (`RUN/NAME/checkpoints`, `RUN/NAME/params`, `RUN/best/params`).
ORBAX_DIRS = frozenset({"checkpoints", "params"})
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
# Extras that install a protocol's fsspec implementation.
_EXTRAS = {"gs": "gcs", "gcs": "gcs"}


class MirrorError(RuntimeError):
    """A URL run directory that cannot be used; the message is one line for the user."""


def is_url(run_dir: str) -> bool:
    """Whether `run_dir` is a URL (`scheme://...`, `file://` included) rather than a local path."""
    return bool(_URL.match(run_dir))


def default_cache(url: str) -> Path:
    """`~/.cache/next-jax/runs/<hash of the URL>/<last part of the URL>`: stable, so a rerun on the same machine
    starts from its cache, and the run keeps the URL's name (the summary's `config_name`)."""
    url = url.rstrip("/")
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base, "next-jax", "runs", digest, url.rsplit("/", 1)[-1] or "run")


def orbax_location(url: str) -> str | None:
    """Where orbax writes a URL run directory's checkpoints itself, or None where it cannot (it reads and
    writes gs:// through tensorstore and etils.epath; a file:// URL is a plain path to it, which is how the
    tests stand in for gs://)."""
    protocol = url.split("://", 1)[0]
    if protocol in ("gs", "gcs"):
        return url.rstrip("/")
    if protocol == "file":
        return url.split("://", 1)[1].rstrip("/") or "/"
    return None


def orbax_owned(rel: str) -> bool:
    """Whether `rel` lies in a directory orbax writes (`NAME/checkpoints/...`, `NAME/params/...`)."""
    parts = rel.split("/")
    return len(parts) > 2 and parts[1] in ORBAX_DIRS


def owner(rel: str) -> int:
    """The process that writes `rel`: a shard's own index, process 0 for everything else."""
    match = _SHARD_OWNER.match(rel.rsplit("/", 1)[-1])
    return int(match.group(1)) if match else 0


def _version(info: dict) -> tuple[int, str]:
    """(size, what changes when an object is rewritten) of an fsspec listing entry (local mtime, GCS
    generation, ...), so `refresh` notices a rewrite of the same size."""
    for key in ("mtime", "generation", "updated", "etag", "created"):
        if info.get(key) is not None:
            return int(info.get("size") or 0), str(info[key])
    return int(info.get("size") or 0), ""


def _skipped(rel: str) -> bool:
    """Temporary files and the mirror's own markers: never pushed, pulled or deleted."""
    parts = rel.split("/")
    return (rel == META or parts[-1] == PARTIAL or parts[-1].endswith(".tmp")
            or any(".orbax-checkpoint-tmp" in p for p in parts))


def _unit_of(rel: str, units: set[str]) -> str | None:
    """The (outermost) checkpoint directory holding `rel`, if any."""
    parts = rel.split("/")
    for i in range(1, len(parts)):
        if "/".join(parts[:i]) in units:
            return "/".join(parts[:i])
    return None


def remote_filesystem(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, root path in it) of `url`; a missing implementation is a `MirrorError`."""
    import fsspec
    import fsspec.core

    protocol = url.split("://", 1)[0]
    try:
        fsspec.get_filesystem_class(protocol)
    except ImportError as e:
        extra = _EXTRAS.get(protocol)
        how = f"install the {extra} extra: pip install -e '.[{extra}]'" if extra else str(e)
        raise MirrorError(f"--run_dir={url}: no filesystem for {protocol}:// is installed ({how})") from None
    except ValueError:
        raise MirrorError(f"--run_dir={url}: {protocol}:// is not a protocol fsspec knows") from None
    fs, root = fsspec.core.url_to_fs(url)
    return fs, root.rstrip("/")


class RunMirror:
    """Keeps the local cache `cache` and the remote `root` (a path in fsspec filesystem `fs`) in step."""

    def __init__(self, fs: Any, root: str, cache: str | Path, *, url: str | None = None,
                 orbax_root: str | None = None, process_index: int = 0, process_count: int = 1) -> None:
        self.fs, self.root = fs, root.rstrip("/")
        # Set: orbax writes checkpoints there itself, and the mirror never copies them (`orbax_owned`).
        self.orbax_root = orbax_root
        self.process_index, self.process_count = process_index, process_count
        self.cache = Path(cache).resolve()
        protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
        self.url = (url or f"{protocols[0]}://{self.root}").rstrip("/")
        # A local filesystem shows a file while it is copied: write a temporary name and rename it.
        self._rename = "file" in protocols
        self._synced: dict[str, tuple[int, int]] = {}  # rel path -> (size, mtime_ns) as last pulled or pushed
        self._seen: dict[str, tuple[int, str]] = {}  # rel path -> remote `_version` as last downloaded
        self._lock = threading.Lock()  # the sampler and verifier threads push shards concurrently

    @classmethod
    def from_url(cls, url: str, cache: str | Path | None = None, **kwargs: Any) -> RunMirror:
        fs, root = remote_filesystem(url)
        return cls(fs, root, cache if cache is not None else default_cache(url), url=url, **kwargs)

    def _mine(self, rel: str) -> bool:
        return owner(rel) == self.process_index

    # -- local side -------------------------------------------------------------------------------------
    def _claim(self) -> None:
        """Refuse a cache that mirrors another URL or holds other files (pull deletes what the remote lacks)."""
        meta = self.cache / META
        if meta.exists():
            other = json.loads(meta.read_text(encoding="utf-8")).get("url")
            if other != self.url:
                raise MirrorError(f"local cache {self.cache} mirrors {other}, not {self.url}; "
                                  "give another --local_cache_dir")
            return
        if self.cache.exists() and any(self.cache.iterdir()):
            raise MirrorError(f"local cache {self.cache} is not empty and is not a next-jax run cache; "
                              "give an empty or new --local_cache_dir")
        atomic_write_json(meta, {"url": self.url})

    def _scan(self) -> dict[str, tuple[int, int]]:
        """Every cached file (temporary ones left out): rel path -> (size, mtime_ns)."""
        out = {}
        for dirpath, dirnames, filenames in os.walk(self.cache):
            dirnames[:] = [d for d in dirnames if ".orbax-checkpoint-tmp" not in d]
            for name in filenames:
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, self.cache).replace(os.sep, "/")
                if _skipped(rel):
                    continue
                try:
                    st = os.stat(path)
                except FileNotFoundError:  # deleted while scanning (orbax pruning old steps)
                    continue
                out[rel] = (st.st_size, st.st_mtime_ns)
        return out

    def _remove_empty_dirs(self) -> None:
        # An empty step directory left by a deletion would look like a finished orbax checkpoint.
        for dirpath, _, _ in sorted(os.walk(self.cache), key=lambda w: -len(w[0])):
            if Path(dirpath) != self.cache and not any(Path(dirpath).iterdir()):
                Path(dirpath).rmdir()

    # -- remote side ------------------------------------------------------------------------------------
    def _remote(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def _list_remote(self, under: str = "") -> dict[str, tuple[int, str]]:
        """Remote files (rel path -> `_version`) under `under`, markers and temporary files included; orbax's
        directories left out where orbax writes the remote itself. Directory placeholders (zero-length
        `NAME/` objects on GCS, written by tf.io.gfile's `makedirs` and the Cloud Console) are not files:
        gcsfs lists them as such, and a download would put a file where the run needs a directory."""
        top = self._remote(under) if under else self.root
        try:
            found = self.fs.find(top, detail=True)
        except FileNotFoundError:
            return {}
        prefix = self.root + "/"
        out = {name[len(prefix):]: _version(info) for name, info in found.items()
               if name.startswith(prefix) and not name.endswith("/") and info.get("type", "file") == "file"}
        return {rel: v for rel, v in out.items() if not orbax_owned(rel)} if self.orbax_root else out

    def _parent(self, target: str) -> str:
        """`target`'s directory, created on a local filesystem (object stores have none to create)."""
        parent = target.rsplit("/", 1)[0]
        if self._rename:
            self.fs.makedirs(parent, exist_ok=True)
        return parent

    def _put(self, rel: str) -> None:
        """Upload one cached file, whole."""
        local = self.cache / rel
        try:
            st = os.stat(local)
        except FileNotFoundError:  # gone since the scan: nothing to keep
            self._synced.pop(rel, None)
            return
        target = self._remote(rel)
        parent = self._parent(target)
        if self._rename:
            tmp = f"{parent}/.{local.name}.{uuid.uuid4().hex[:8]}.tmp"
            self.fs.put_file(str(local), tmp)
            self.fs.mv(tmp, target)
        else:  # object stores make an object visible only when its upload completes
            self.fs.put_file(str(local), target)
        self._synced[rel] = (st.st_size, st.st_mtime_ns)

    def _get(self, rel: str) -> None:
        """Download one remote file into the cache, whole (a temporary name, then a rename)."""
        path = self.cache / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            self.fs.get_file(self._remote(rel), str(tmp))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        st = os.stat(path)
        self._synced[rel] = (st.st_size, st.st_mtime_ns)

    # -- the operations -----------------------------------------------------------------------------
    def pull(self) -> int:
        """Make the cache equal to the remote (see the module doc); returns the number of files downloaded."""
        with self._lock:
            self._claim()
            listed = self._list_remote()
            partial = {rel.rsplit("/", 1)[0] for rel in listed if rel.split("/")[-1] == PARTIAL}
            if partial:
                log.warning("skipping checkpoint directories whose push was interrupted: %s", sorted(partial))
            remote = {rel: version for rel, version in listed.items()
                      if not _skipped(rel) and _unit_of(rel, partial) is None}
            local = self._scan()
            for rel in local.keys() - remote.keys():
                (self.cache / rel).unlink()
            self._remove_empty_dirs()
            fetched = 0
            for rel, version in sorted(remote.items()):
                self._seen[rel] = version
                if rel not in REFRESH and rel in local and local[rel][0] == version[0]:
                    continue
                self._get(rel)
                fetched += 1
            self._synced = self._scan()
            log.info("pulled %s into %s: %d files downloaded, %d already cached", self.url, self.cache, fetched,
                     len(remote) - fetched)
            return fetched

    def push(self) -> int:
        """Upload new and changed files, checkpoint directories marked partial while they go up, `state.json`
        last; returns the number of files uploaded."""
        with self._lock:
            local = self._scan()
            changed = sorted(rel for rel, st in local.items() if self._synced.get(rel) != st and self._mine(rel))
            if not changed:
                return 0
            units = {rel.rsplit("/", 1)[0] for rel in local if "/" in rel and rel.split("/")[-1] == UNIT_MARKER}
            by_unit: dict[str, list[str]] = {}
            plain = []
            for rel in changed:
                unit = _unit_of(rel, units)
                if unit is None:
                    plain.append(rel)
                else:
                    by_unit.setdefault(unit, []).append(rel)
            for rel in plain:
                if rel != STATE:
                    self._put(rel)
            for unit, rels in sorted(by_unit.items()):
                self._push_unit(unit, rels, local)
            if STATE in plain:
                self._put(STATE)
            return len(changed)

    def _push_unit(self, unit: str, rels: list[str], local: dict[str, tuple[int, int]]) -> None:
        marker = self._remote(f"{unit}/{PARTIAL}")
        self._parent(marker)
        self.fs.pipe_file(marker, b"")
        # Files of an earlier save of this directory that the new one lacks (orbax names data files by hash).
        stale = [self._remote(r) for r in self._list_remote(unit) if r not in local and not r.endswith(PARTIAL)]
        if stale:
            self.fs.rm(stale)
        for rel in rels:
            self._put(rel)
        self.fs.rm_file(marker)

    def push_file(self, path: str | Path) -> None:
        """Upload one completed file (a shard) now; best effort: the stage's `push` retries what fails."""
        rel = os.path.relpath(Path(path).resolve(), self.cache).replace(os.sep, "/")
        if rel.startswith("../") or rel == STATE or _skipped(rel) or not self._mine(rel):
            return
        try:
            with self._lock:
                st = os.stat(self.cache / rel)
                if self._synced.get(rel) != (st.st_size, st.st_mtime_ns):
                    self._put(rel)
        except Exception as e:  # noqa: BLE001 - the stage's push uploads it (or fails loudly)
            log.warning("could not push %s to %s now: %s: %s", rel, self.url, type(e).__name__, e)

    def refresh(self) -> int:
        """Download the files of other processes that are new or rewritten on the remote since this cache last
        saw them (call it after a barrier that follows their push); nothing of this process's is replaced and
        nothing deleted. A no-op for one process. Returns the number of files downloaded."""
        if self.process_count == 1:
            return 0
        with self._lock:
            fetched = 0
            for rel, version in sorted(self._list_remote().items()):
                if _skipped(rel) or self._mine(rel) or self._seen.get(rel) == version:
                    continue
                self._get(rel)
                self._seen[rel] = version
                fetched += 1
            return fetched

    def push_best_effort(self) -> None:
        """`push` on the way out of a failed run: keep what was done, never mask the run's own error."""
        try:
            self.push()
        except Exception as e:  # noqa: BLE001
            log.warning("could not push %s to %s: %s: %s", self.cache, self.url, type(e).__name__, e)


def open_mirror(url: str, local_cache_dir: str | None, *, process_index: int = 0,
                process_count: int = 1) -> RunMirror:
    """The mirror of run directory `url` for this process. With several processes each works in a cache of
    its own (`CACHE/pIII`, so a folder given to every host may be shared or not), which needs orbax to write
    checkpoints to the remote itself (`orbax_location`): no host could read another's checkpoint pieces."""
    orbax_root = orbax_location(url)
    if process_count > 1 and orbax_root is None:
        raise MirrorError(f"--run_dir={url} with {process_count} processes: orbax must write checkpoints to the URL "
                          "itself, which it does for gs:// (and file://), not " + url.split("://", 1)[0] + "://")
    cache = Path(local_cache_dir) if local_cache_dir else default_cache(url)
    if process_count > 1:
        cache = cache / f"p{process_index:03d}"
    mirror = RunMirror.from_url(url, cache, orbax_root=orbax_root, process_index=process_index,
                                process_count=process_count)
    _check_bucket(mirror, url)
    return mirror


_LOCAL_PROTOCOLS = {"file", "local", "memory"}


def _check_bucket(mirror: RunMirror, url: str) -> None:
    """An object store's bucket must exist and be readable before the run starts: otherwise the first push,
    after the first stage's work, fails deep in the client."""
    protocols = {mirror.fs.protocol} if isinstance(mirror.fs.protocol, str) else set(mirror.fs.protocol)
    if protocols & _LOCAL_PROTOCOLS:
        return
    bucket = mirror.root.split("/", 1)[0]
    try:
        found = mirror.fs.exists(bucket)
    except Exception as e:  # credentials, network, permissions: whatever the client raises, say which
        raise MirrorError(f"--run_dir={url}: cannot reach bucket {bucket!r}: {type(e).__name__}: {e}") from None
    if not found:
        raise MirrorError(f"--run_dir={url}: bucket {bucket!r} does not exist (or these credentials cannot "
                          "see it); create it first")
