"""Shared by the run-mirror tests (local fsspec memory and the GCS emulator): a finished-looking run
directory, the temporary files that must never reach the remote, and a recorder of the mirror's remote writes."""

from __future__ import annotations

from pathlib import Path

# A finished-looking run: stage record, configs, data, shards, an orbax checkpoint directory, and temporary
# files of every kind the loop and orbax leave (none may reach the remote).
RUN = {
    "state.json": '{"completed": {"data": null}}',
    "config.gin": "a = 1\n",
    "data/pool.jsonl": "{}\n",
    "iter_0/samples/shard-p000-00000.jsonl.gz": "samples",
    "iter_0/verdicts/shard-p000-00000.jsonl.gz": "verdicts",
    "base/checkpoints/2/_CHECKPOINT_METADATA": "{}",
    "base/checkpoints/2/state/manifest.ocdbt": "manifest",
    "base/checkpoints/2/state/d/0a1b": "weights",
}
TEMPORARY = (".state.json.abc123.tmp", "iter_0/samples/shard-p000-00001.jsonl.gz.tmp",
             "base/checkpoints/4.orbax-checkpoint-tmp-17/_CHECKPOINT_METADATA")


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


class Recording:
    """Records every write and delete the mirror makes on the remote, in order (until the test ends)."""

    def __init__(self, fs, monkeypatch) -> None:
        self.ops: list[tuple[str, str]] = []
        for method in ("put_file", "pipe_file", "rm_file", "rm", "mv"):
            monkeypatch.setattr(fs, method, self._wrap(method, getattr(fs, method)))

    def _wrap(self, method, fn):
        def call(path, *args, **kwargs):
            target = args[0] if method == "mv" or (method == "put_file" and args) else path
            self.ops.append((method, str(target)))
            return fn(path, *args, **kwargs)
        return call

    def uploads(self, root: str) -> list[str]:
        return [t[len(root) + 1:] for m, t in self.ops if m in ("put_file", "mv") and not t.endswith(".tmp")]
