"""`--run_dir=gs://...` against a local GCS emulator (gcp-storage-emulator, in memory, on 127.0.0.1 only).

What runs against it:
- the run-directory mirror (`run_mirror.py`) through gcsfs, the filesystem `gs://` URLs get in production
  (gcsfs's default class, told that buckets are standard ones: it asks the Storage Control gRPC API, which the
  emulator lacks): push (checkpoint directories marked partial while they go up, `state.json` last, no
  temporary file), pull into an empty cache, skipping an interrupted checkpoint push, stale files of a
  checkpoint saved again, a same-size `state.json` rewritten by another host, two processes (two gcsfs
  clients, as on two hosts) exchanging files with `refresh`, and directory placeholder objects (`NAME/`, as
  tf.io.gfile's `makedirs` and the Cloud Console write them) never taken for files;
- orbax through the project's checkpoint functions at the `gs://` paths `RunDir.checkpoint_path` gives
  (`gcs_orbax_worker.py`, in a fresh interpreter): `save_params`/`restore_params`, `exists`/`remove`, a
  `CheckpointManager` pruning to `max_to_keep` and a second manager restoring the latest step, then a push
  and a pull into a fresh cache that leave orbax's directories to the remote. Orbax writes array data through
  tensorstore, whose GCS driver takes its endpoint from `TENSORSTORE_GCS_HTTP_URL` and goes anonymous when it
  finds no credentials (`GOOGLE_APPLICATION_CREDENTIALS` unset, an empty `CLOUDSDK_CONFIG`, and
  `GCE_METADATA_ROOT` at a closed port so the metadata-server probe fails at once).

Not covered: orbax's file operations on gs:// (directories, `_CHECKPOINT_METADATA`, `commit_success.txt`,
deletes) go through etils.epath, which uses tf.io.gfile whenever tensorflow is installed, as it is here. TF's
GCS client has `https://www.googleapis.com/storage/v1/` built in and no setting for its endpoint (its settings
are `GCS_*` tuning variables and `GCE_METADATA_HOST`), so the worker sets `EPATH_USE_TF=false` and epath uses
gcsfs instead: tf.io.gfile on gs:// (and the `NAME/` placeholders its `makedirs` writes, which the placeholder
test writes itself) meets real GCS only.
Nor are the emulator's gaps: it has no Storage Control API (zonal and hierarchical-namespace buckets) and
ignores listing ranges (`startOffset`), so each test gets a bucket of its own.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

gcsfs = pytest.importorskip("gcsfs", reason="gcsfs is not installed (pip install -e '.[gcs]')")
pytest.importorskip("gcp_storage_emulator", reason="gcp-storage-emulator is not installed (pip install -e '.[test]')")

import fsspec  # noqa: E402
from mirror_fixtures import RUN, TEMPORARY, Recording, write  # noqa: E402

from next_jax.selftrain.run_mirror import PARTIAL, MirrorError, RunMirror, open_mirror, orbax_owned  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """The endpoint (`http://127.0.0.1:PORT`) of an in-memory emulator (`gcs_emulator_server.py`: downloads
    carry the object's generation, as tensorstore needs), killed by its pid afterwards."""
    log_path = tmp_path_factory.mktemp("gcs_emulator") / "emulator.log"
    with open(log_path, "wb") as log:
        port = free_port()
        proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("gcs_emulator_server.py")), "start",
                                 "--host=127.0.0.1", f"--port={port}", "--in-memory", "--quiet"],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(endpoint + "/", timeout=1) as r:
                    if r.read() == b"OK":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the GCS emulator did not start on {endpoint}:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        yield endpoint
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def standard_buckets(monkeypatch):
    """gcsfs's default class asks the Storage Control gRPC API for a bucket's layout, which the emulator lacks
    (a minute of retries): answer as GCS does for a standard bucket."""
    try:
        from gcsfs.extended_gcsfs import BucketType, ExtendedGcsFileSystem
    except ImportError:  # a gcsfs without it
        return

    async def standard(self, bucket):
        return BucketType.NON_HIERARCHICAL

    monkeypatch.setattr(ExtendedGcsFileSystem, "_get_bucket_type", standard)


@pytest.fixture
def bucket(emulator, standard_buckets, monkeypatch):
    """A new bucket; `gs://` URLs opened by the project (`fsspec.url_to_fs`) reach the emulator anonymously."""
    monkeypatch.setitem(fsspec.config.conf, "gcs", {"token": "anon", "endpoint_url": emulator})
    name = f"run-{uuid.uuid4().hex[:10]}"
    gcs().mkdir(name)
    return name


def gcs():
    """A gcsfs client of its own (another host's), configured by `bucket`."""
    return fsspec.filesystem("gs", skip_instance_cache=True)


def remote_files(fs, root: str) -> dict[str, bytes]:
    return {p[len(root) + 1:]: fs.cat_file(p) for p in fs.find(root)}


def pushed_run(bucket: str, cache: Path) -> RunMirror:
    mirror = RunMirror.from_url(f"gs://{bucket}/run", cache)
    mirror.pull()
    write(mirror.cache, RUN)
    mirror.push()
    return mirror


def test_push_then_pull_round_trip(bucket, tmp_path, monkeypatch):
    url = f"gs://{bucket}/run"
    mirror = RunMirror.from_url(url, tmp_path / "cache")
    assert mirror.url == url and mirror.root == f"{bucket}/run" and not mirror._rename
    assert mirror.pull() == 0  # a new remote: the cache is claimed, nothing fetched
    write(mirror.cache, RUN)
    write(mirror.cache, {t: "partial" for t in TEMPORARY})
    recording = Recording(mirror.fs, monkeypatch)
    assert mirror.push() == len(RUN)
    root = mirror.root
    assert remote_files(gcs(), root) == {rel: text.encode() for rel, text in RUN.items()}
    uploads = [t[len(root) + 1:] for m, t in recording.ops if m == "put_file"]
    assert sorted(uploads) == sorted(RUN) and uploads[-1] == "state.json"
    marker = f"{root}/base/checkpoints/2/{PARTIAL}"
    first, last = recording.ops.index(("pipe_file", marker)), recording.ops.index(("rm_file", marker))
    assert [t for m, t in recording.ops[first + 1:last] if m == "put_file"] == [
        f"{root}/base/checkpoints/2/{rel}" for rel in ("_CHECKPOINT_METADATA", "state/d/0a1b", "state/manifest.ocdbt")]
    assert mirror.push() == 0  # nothing changed

    fresh = RunMirror.from_url(url, tmp_path / "fresh")
    assert fresh.pull() == len(RUN)
    restored = {str(p.relative_to(fresh.cache)): p.read_text() for p in fresh.cache.rglob("*") if p.is_file()}
    meta = restored.pop(".next_jax_mirror.json")
    assert restored == RUN and json.loads(meta) == {"url": url}
    assert fresh.push() == 0  # what was pulled is known to be on the remote


def test_pull_refreshes_a_rewritten_state_and_drops_what_the_remote_lacks(bucket, tmp_path):
    mirror = pushed_run(bucket, tmp_path / "cache")
    other = gcs()  # another host advances the run: state.json of the same size, a new file
    other.pipe_file(f"{mirror.root}/state.json", RUN["state.json"].replace("data", "base").encode())
    other.pipe_file(f"{mirror.root}/iter_0/kept.jsonl", b"new\n")
    write(mirror.cache, {"iter_0/samples/shard-p000-00002.jsonl.gz": "never pushed"})
    again = RunMirror.from_url(mirror.url, mirror.cache)
    assert again.pull() == 3  # state.json and config.gin (always), kept.jsonl (new)
    assert (mirror.cache / "state.json").read_text() == RUN["state.json"].replace("data", "base")
    assert (mirror.cache / "iter_0/kept.jsonl").read_text() == "new\n"
    assert not (mirror.cache / "iter_0/samples/shard-p000-00002.jsonl.gz").exists()


def test_an_interrupted_checkpoint_push_is_skipped_and_a_resave_drops_stale_files(bucket, tmp_path):
    mirror = pushed_run(bucket, tmp_path / "cache")
    fs = gcs()
    fs.pipe_file(f"{mirror.root}/base/checkpoints/2/{PARTIAL}", b"")  # as a push killed midway leaves it
    fresh = RunMirror.from_url(mirror.url, tmp_path / "fresh")
    fresh.pull()
    assert not (fresh.cache / "base/checkpoints").exists()  # no half checkpoint, no empty step directory
    assert (fresh.cache / "iter_0/samples/shard-p000-00000.jsonl.gz").exists()
    # Saved again with other data files: the marker goes, and so does the old data file orbax no longer names.
    write(fresh.cache, {"base/checkpoints/2/_CHECKPOINT_METADATA": "{ }", "base/checkpoints/2/state/d/ffff": "new",
                        "base/checkpoints/2/state/manifest.ocdbt": "manifest"})
    fresh.push()
    assert sorted(p for p in remote_files(fs, mirror.root) if p.startswith("base/")) == [
        "base/checkpoints/2/_CHECKPOINT_METADATA", "base/checkpoints/2/state/d/ffff",
        "base/checkpoints/2/state/manifest.ocdbt"]
    assert RunMirror.from_url(mirror.url, tmp_path / "third").pull() == len(RUN)


def test_two_processes_exchange_files_through_the_bucket(bucket, tmp_path):
    """As the loop's `exchange` does on two hosts, each with a gcsfs client of its own: each pushes its own
    files, `refresh` brings the other's (a same-size rewrite included), and orbax's directories, written to
    the bucket by orbax, are never copied."""
    url = f"gs://{bucket}/run"
    p0 = open_mirror(url, str(tmp_path / "caches"), process_index=0, process_count=2)
    template = open_mirror(url, str(tmp_path / "caches"), process_index=1, process_count=2)
    p1 = RunMirror(gcs(), template.root, template.cache, url=url, orbax_root=template.orbax_root,
                   process_index=1, process_count=2)
    assert p0.orbax_root == url and p0.fs is not p1.fs
    p0.pull(), p1.pull()
    own = {rel: text for rel, text in RUN.items() if not orbax_owned(rel)}
    write(p0.cache, own)
    p0.fs.pipe_file(f"{p0.root}/base/params/_CHECKPOINT_METADATA", b"{}")  # orbax's, on the remote
    shard1 = "iter_0/samples/shard-p001-00001.jsonl.gz"
    write(p1.cache, {shard1: "p1 samples", "data/pool.jsonl": "p1's own copy, never pushed\n"})
    assert p0.push() == len(own) and p1.push() == 1
    assert p0.refresh() == 1 and (p0.cache / shard1).read_text() == "p1 samples"
    assert p1.refresh() == len(own)
    assert (p1.cache / "data/pool.jsonl").read_text() == "{}\n"
    assert not (p0.cache / "base").exists() and not (p1.cache / "base").exists()
    write(p0.cache, {"state.json": RUN["state.json"].replace("data", "base")})  # the next stage: same size
    assert p0.push() == 1 and p1.refresh() == 1 and p0.refresh() == 0
    assert (p1.cache / "state.json").read_text() == RUN["state.json"].replace("data", "base")


def test_orbax_writes_and_reads_checkpoints_at_the_gs_url(bucket, emulator, tmp_path):
    dead = f"127.0.0.1:{free_port()}"  # nothing listens: the metadata-server probe fails at once
    (tmp_path / "gcloud").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "GOOGLE_APPLICATION_CREDENTIALS"}
    env.update(STORAGE_EMULATOR_HOST=emulator, FSSPEC_GCS_TOKEN="anon", TENSORSTORE_GCS_HTTP_URL=emulator,
               GCE_METADATA_ROOT=dead, GCE_METADATA_HOST=dead, GCE_METADATA_IP=dead, NO_GCE_CHECK="true",
               CLOUDSDK_CONFIG=str(tmp_path / "gcloud"), EPATH_USE_TF="false", JAX_PLATFORMS="cpu",
               PYTHONPATH=str(REPO))
    worker = Path(__file__).with_name("gcs_orbax_worker.py")
    done = subprocess.run([sys.executable, str(worker), bucket, str(tmp_path / "caches")], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["params_path"] == f"gs://{bucket}/run/base/params"
    assert (out["exists_before"], out["exists_after"], out["exists_removed"]) == (False, True, False)
    assert out["params_restored"] and out["resaved_restored"]
    assert out["latest_before"] is None and out["steps"] == [2, 3]
    assert out["latest"] == 3 and out["restored_meta"] == {"step": 3}
    assert out["restored_state"]
    remote = out["remote_files"]
    assert "base/params/_CHECKPOINT_METADATA" in remote and "base/checkpoints/3/_CHECKPOINT_METADATA" in remote
    assert not [f for f in remote if f.startswith("base/checkpoints/1/")]  # pruned by max_to_keep
    assert not [f for f in remote if "orbax-checkpoint-tmp" in f or f.endswith(".tmp") or PARTIAL in f]
    # Only the stage's own files went through the mirror, and only they come back in a pull.
    assert out["pushed"] == 3 and out["pulled"] == 3
    assert out["pulled_files"] == [".next_jax_mirror.json", "base/metrics.json", "config.gin", "state.json"]
    assert out["pulled_state"] == {"steps": 3}


def test_directory_placeholder_objects_are_not_files(bucket, tmp_path):
    """Zero-length `NAME/` objects stand for directories on GCS: tf.io.gfile's `makedirs` (orbax's through
    etils.epath when tensorflow is installed: `RUN/base/` and `RUN/base/checkpoints/` when base's training
    starts) and the Cloud Console's "create folder" write them. gcsfs lists them as files; the mirror must not
    download them (into a file where the run needs a directory) on a pull, nor on another process's refresh."""
    url = f"gs://{bucket}/run"
    p0 = open_mirror(url, str(tmp_path / "caches"), process_index=0, process_count=2)
    template = open_mirror(url, str(tmp_path / "caches"), process_index=1, process_count=2)
    p1 = RunMirror(gcs(), template.root, template.cache, url=url, orbax_root=template.orbax_root,
                   process_index=1, process_count=2)
    p0.pull(), p1.pull()
    own = {rel: text for rel, text in RUN.items() if not orbax_owned(rel)}
    write(p0.cache, own)
    for marker in ("", "base/", "base/checkpoints/", "iter_0/", "iter_0/samples/"):
        p0.fs.pipe_file(f"{p0.root}/{marker}", b"")
    assert p0.push() == len(own)
    assert p1.refresh() == len(own)
    assert (p1.cache / "iter_0/samples/shard-p000-00000.jsonl.gz").read_text() == "samples"
    fresh = RunMirror.from_url(url, tmp_path / "fresh")
    assert fresh.pull() == len(own)
    restored = {str(p.relative_to(fresh.cache)): p.read_text() for p in fresh.cache.rglob("*") if p.is_file()}
    restored.pop(".next_jax_mirror.json")
    assert restored == own


def test_a_missing_bucket_is_a_one_line_error_before_the_run_starts(bucket, tmp_path):
    with pytest.raises(MirrorError, match=r"bucket 'no-such-bucket-[0-9a-f]+' does not exist"):
        open_mirror(f"gs://no-such-bucket-{uuid.uuid4().hex[:8]}/run", str(tmp_path / "cache"))
    assert open_mirror(f"gs://{bucket}/run", str(tmp_path / "cache2")).url == f"gs://{bucket}/run"
