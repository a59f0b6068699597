"""The run-directory mirror (`run_mirror.py`) on fsspec's in-memory filesystem: push and pull round trip,
`state.json` pushed last, temporary files never pushed, unchanged files not pushed again, interrupted
checkpoint pushes skipped, and one-line errors for unusable URLs and caches."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import fsspec
import pytest
from mirror_fixtures import RUN, TEMPORARY, Recording, write

from next_jax.selftrain import run_mirror
from next_jax.selftrain.launch_config import ConfigError, open_run
from next_jax.selftrain.run_mirror import META, PARTIAL, MirrorError, RunMirror, open_mirror
from next_jax.selftrain.rundir import RunDir


@pytest.fixture
def remote():
    """(filesystem, root) of a fresh directory on the in-memory filesystem, removed afterwards."""
    fs = fsspec.filesystem("memory", skip_instance_cache=True)
    root = f"/mirror_test_{uuid.uuid4().hex[:8]}"
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


def remote_files(fs, root: str) -> dict[str, bytes]:
    return {p[len(root) + 1:]: fs.cat_file(p) for p in fs.find(root)}


def pushed_run(fs, root: str, cache: Path) -> RunMirror:
    """A mirror whose cache holds `RUN`, pushed to the remote."""
    mirror = RunMirror(fs, root, cache)
    mirror.pull()
    write(mirror.cache, RUN)
    mirror.push()
    return mirror


def test_push_uploads_every_finished_file_state_last_and_no_temporary_file(remote, tmp_path, monkeypatch):
    fs, root = remote
    cache = tmp_path / "cache"
    mirror = RunMirror(fs, root, cache)
    mirror.pull()  # a new remote: the cache is claimed, nothing fetched
    write(cache, RUN)
    write(cache, {t: "partial" for t in TEMPORARY})
    recording = Recording(fs, monkeypatch)
    assert mirror.push() == len(RUN)
    assert remote_files(fs, root) == {rel: text.encode() for rel, text in RUN.items()}
    uploads = recording.uploads(root)
    assert sorted(uploads) == sorted(RUN) and uploads[-1] == "state.json"
    # The checkpoint directory was marked partial for exactly as long as its files went up.
    marker = f"{root}/base/checkpoints/2/{PARTIAL}"
    ops = recording.ops
    first = ops.index(("pipe_file", marker))
    last = ops.index(("rm_file", marker))
    assert [t for m, t in ops[first + 1:last] if m == "put_file"] == [
        f"{root}/base/checkpoints/2/{rel}" for rel in ("_CHECKPOINT_METADATA", "state/d/0a1b", "state/manifest.ocdbt")]


def test_unchanged_files_are_not_pushed_again(remote, tmp_path, monkeypatch):
    fs, root = remote
    cache = tmp_path / "cache"
    mirror = RunMirror(fs, root, cache)
    mirror.pull()
    write(cache, RUN)
    mirror.push()
    recording = Recording(fs, monkeypatch)
    assert mirror.push() == 0 and recording.ops == []
    write(cache, {"state.json": '{"completed": {"data": null, "base": null}}', "iter_0/kept.jsonl": "{}\n"})
    assert mirror.push() == 2
    assert recording.uploads(root) == ["iter_0/kept.jsonl", "state.json"]


def test_a_pull_into_an_empty_cache_restores_the_run(remote, tmp_path):
    fs, root = remote
    first = RunMirror(fs, root, tmp_path / "first")
    first.pull()
    write(first.cache, RUN)
    write(first.cache, {t: "partial" for t in TEMPORARY})
    first.push()
    fresh = RunMirror(fs, root, tmp_path / "fresh")
    assert fresh.pull() == len(RUN)
    restored = {str(p.relative_to(fresh.cache)): p.read_text() for p in fresh.cache.rglob("*") if p.is_file()}
    assert restored == {**RUN, META: restored[META]}
    assert json.loads(restored[META]) == {"url": f"memory://{root}"}
    assert fresh.push() == 0  # what was pulled is known to be on the remote


def test_pull_skips_unchanged_files_refreshes_state_and_drops_what_the_remote_lacks(remote, tmp_path, monkeypatch):
    fs, root = remote
    mirror = pushed_run(fs, root, tmp_path / "cache")
    # Another host advanced the run: the remote's state.json has the same size but other content.
    fs.pipe_file(f"{root}/state.json", RUN["state.json"].replace("data", "base").encode())
    fs.pipe_file(f"{root}/iter_0/kept.jsonl", b"new\n")
    write(mirror.cache, {"iter_0/samples/shard-p000-00002.jsonl.gz": "never pushed"})
    recording = Recording(fs, monkeypatch)
    again = RunMirror(fs, root, mirror.cache)
    assert again.pull() == 3  # state.json and config.gin (always), kept.jsonl (new); the rest: same size
    assert (mirror.cache / "state.json").read_text() == RUN["state.json"].replace("data", "base")
    assert not (mirror.cache / "iter_0/samples/shard-p000-00002.jsonl.gz").exists()
    assert recording.ops == []  # a pull never writes to the remote


def test_an_interrupted_checkpoint_push_is_not_pulled(remote, tmp_path):
    fs, root = remote
    pushed_run(fs, root, tmp_path / "cache")
    fs.pipe_file(f"{root}/base/checkpoints/2/{PARTIAL}", b"")  # as a push killed midway leaves it
    fresh = RunMirror(fs, root, tmp_path / "fresh")
    fresh.pull()
    assert not (fresh.cache / "base/checkpoints").exists()  # no half checkpoint (nor an empty step directory)
    assert (fresh.cache / "iter_0/samples/shard-p000-00000.jsonl.gz").exists()
    # The checkpoint saved and pushed again is complete: its marker is gone and a pull brings it.
    write(fresh.cache, {rel: text for rel, text in RUN.items() if rel.startswith("base/")})
    fresh.push()
    assert not fs.exists(f"{root}/base/checkpoints/2/{PARTIAL}")
    assert RunMirror(fs, root, tmp_path / "third").pull() == len(RUN)


def test_a_checkpoint_directory_saved_again_loses_its_stale_remote_files(remote, tmp_path):
    fs, root = remote
    mirror = pushed_run(fs, root, tmp_path / "cache")
    (mirror.cache / "base/checkpoints/2/state/d/0a1b").unlink()
    write(mirror.cache, {"base/checkpoints/2/state/d/ffff": "new weights", "base/checkpoints/2/_CHECKPOINT_METADATA": "{ }"})
    mirror.push()
    assert sorted(p for p in remote_files(fs, root) if p.startswith("base/")) == [
        "base/checkpoints/2/_CHECKPOINT_METADATA", "base/checkpoints/2/state/d/ffff",
        "base/checkpoints/2/state/manifest.ocdbt"]


def test_push_file_uploads_one_shard_at_once_but_never_the_state(remote, tmp_path, monkeypatch):
    fs, root = remote
    mirror = RunMirror(fs, root, tmp_path / "cache")
    mirror.pull()
    write(mirror.cache, RUN)
    shard = mirror.cache / "iter_0/samples/shard-p000-00000.jsonl.gz"
    mirror.push_file(shard)
    mirror.push_file(mirror.cache / "state.json")
    mirror.push_file(tmp_path / "elsewhere.txt")
    assert list(remote_files(fs, root)) == ["iter_0/samples/shard-p000-00000.jsonl.gz"]
    recording = Recording(fs, monkeypatch)
    mirror.push()
    assert "iter_0/samples/shard-p000-00000.jsonl.gz" not in recording.uploads(root)


def test_a_local_filesystem_remote_gets_whole_files_through_a_rename(tmp_path, monkeypatch):
    mirror = RunMirror.from_url(f"file://{tmp_path}/remote", tmp_path / "cache")
    mirror.pull()
    write(mirror.cache, RUN)
    recording = Recording(mirror.fs, monkeypatch)
    mirror.push()
    moved = [t for m, t in recording.ops if m == "mv"]
    assert len(moved) == len(RUN) and moved[-1] == f"{tmp_path}/remote/state.json"
    remote = tmp_path / "remote"
    assert sorted(str(p.relative_to(remote)) for p in remote.rglob("*") if p.is_file()) == sorted(RUN)


def test_default_cache_is_stable_per_url_and_keeps_the_run_name(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    a = run_mirror.default_cache("gs://bucket/runs/tiny_cpu_s0/")
    assert a == run_mirror.default_cache("gs://bucket/runs/tiny_cpu_s0") and a.name == "tiny_cpu_s0"
    assert a.parent != run_mirror.default_cache("gs://other/runs/tiny_cpu_s0").parent
    assert str(a).startswith(str(tmp_path / "next-jax" / "runs"))


def test_urls_and_paths():
    assert run_mirror.is_url("gs://b/r") and run_mirror.is_url("file:///tmp/r") and run_mirror.is_url("s3://b")
    assert not run_mirror.is_url("runs/x") and not run_mirror.is_url("/abs/path") and not run_mirror.is_url("a:b")


def test_unusable_urls_and_caches_get_one_line_errors(monkeypatch, tmp_path):
    with pytest.raises(MirrorError, match="not a protocol fsspec knows"):
        RunMirror.from_url("nosuchproto://x/run")

    def no_gcsfs(protocol):
        raise ImportError("Please install gcsfs to access Google Storage")

    monkeypatch.setattr(fsspec, "get_filesystem_class", no_gcsfs)
    with pytest.raises(MirrorError, match=r"pip install -e '\.\[gcs\]'") as e:
        RunMirror.from_url("gs://bucket/run")
    assert "\n" not in str(e.value)
    monkeypatch.undo()
    with pytest.raises(MirrorError, match="orbax must write checkpoints to the URL itself"):
        open_mirror("memory://x/run", None, process_count=2)
    foreign = tmp_path / "foreign"
    write(foreign, {"notes.txt": "mine"})
    with pytest.raises(MirrorError, match="not empty"):
        RunMirror.from_url("memory://x/run", foreign).pull()
    assert (foreign / "notes.txt").exists()
    RunMirror.from_url(f"file://{tmp_path}/a", tmp_path / "cache").pull()
    with pytest.raises(MirrorError, match="mirrors file://"):
        RunMirror.from_url(f"file://{tmp_path}/b", tmp_path / "cache").pull()


def test_open_run_maps_errors_to_config_errors(tmp_path):
    assert open_run(str(tmp_path / "run"), None) == (str(tmp_path / "run"), None)
    with pytest.raises(ConfigError, match="only for a URL"):
        open_run(str(tmp_path / "run"), str(tmp_path / "cache"))
    with pytest.raises(ConfigError, match="nosuchproto"):
        open_run("nosuchproto://x", None)
    local, mirror = open_run(f"file://{tmp_path}/remote", str(tmp_path / "cache"))
    assert local == str((tmp_path / "cache").resolve()) and mirror is not None


def test_orbax_paths_go_to_the_remote_where_orbax_writes_it(tmp_path):
    assert run_mirror.orbax_location("gs://bucket/runs/a/") == "gs://bucket/runs/a"
    assert run_mirror.orbax_location(f"file://{tmp_path}/remote") == f"{tmp_path}/remote"  # gs:// in the tests
    assert run_mirror.orbax_location("memory://x/run") is None  # orbax cannot: checkpoints go through the cache
    remote = RunDir(tmp_path / "cache", orbax_root="gs://bucket/runs/a/")
    assert remote.checkpoint_path("iter_0", "checkpoints") == "gs://bucket/runs/a/iter_0/checkpoints"
    assert remote.checkpoint_path("best", "params") == "gs://bucket/runs/a/best/params"
    local = RunDir(tmp_path / "run")
    assert local.checkpoint_path("base", "params") == str((tmp_path / "run" / "base" / "params").resolve())
    assert [run_mirror.orbax_owned(r) for r in ("base/checkpoints/2/x", "best/params/x", "iter_0/params/d/1",
                                                "tensorboard/base/x", "iter_0/kept.jsonl", "data/params")] \
        == [True, True, True, False, False, False]
    assert [run_mirror.owner(r) for r in ("iter_0/samples/shard-p001-00003.jsonl.gz", "state.json",
                                          "base/eval/dev/greedy/verdicts/shard-p000-00000.jsonl.gz")] == [1, 0, 0]


def test_processes_with_caches_of_their_own_exchange_files_through_the_remote(tmp_path):
    """Two processes' mirrors as the loop uses them: each pushes only its own files, and `refresh` (after
    both pushed) brings each the other's, a same-size rewrite included; orbax's directories on the remote
    (written there by orbax itself) are never copied either way."""
    url = f"file://{tmp_path}/remote"
    p0, p1 = (open_mirror(url, str(tmp_path / "shared_or_not"), process_index=i, process_count=2) for i in range(2))
    assert (p0.cache.name, p1.cache.name) == ("p000", "p001") and p0.orbax_root == f"{tmp_path}/remote"
    p0.pull(), p1.pull()
    write(p0.cache, {rel: text for rel, text in RUN.items() if not run_mirror.orbax_owned(rel)})
    write(tmp_path / "remote", {"base/checkpoints/2/_CHECKPOINT_METADATA": "{}", "base/params/d/0a": "w"})  # orbax's
    shard1 = "iter_0/samples/shard-p001-00001.jsonl.gz"
    write(p1.cache, {shard1: "p1 samples", "data/pool.jsonl": "p1's own copy, never pushed\n"})
    p1.push_file(p1.cache / "data/pool.jsonl")
    assert p0.push() == 5 and p1.push() == 1
    remote = tmp_path / "remote"
    assert (remote / "data/pool.jsonl").read_text() == "{}\n" and (remote / shard1).read_text() == "p1 samples"
    assert p0.refresh() == 1 and (p0.cache / shard1).read_text() == "p1 samples"
    assert p1.refresh() == 5  # process 0's files (its own shard kept, `data/pool.jsonl` replaced by the shared one)
    assert (p1.cache / "data/pool.jsonl").read_text() == "{}\n" and (p1.cache / shard1).read_text() == "p1 samples"
    assert (p1.cache / "iter_0/samples/shard-p000-00000.jsonl.gz").read_text() == "samples"
    assert not (p0.cache / "base").exists() and not (p1.cache / "base").exists()
    write(p0.cache, {"state.json": RUN["state.json"].replace("data", "base")})  # the next stage: same size
    assert p0.push() == 1 and p1.refresh() == 1 and p0.refresh() == 0
    assert (p1.cache / "state.json").read_text() == RUN["state.json"].replace("data", "base")
    assert p1.push() == 0  # what it fetched is not its to push
    assert RunMirror.from_url(url, tmp_path / "one_process").refresh() == 0  # one process: nothing to fetch
