"""Orbax through a `gs://` run directory on a local GCS emulator: `python gcs_orbax_worker.py BUCKET CACHE`.

Run by `test_gcs_emulator.py` in a fresh interpreter whose environment points every GCS client at the emulator
(tensorstore: `TENSORSTORE_GCS_HTTP_URL`; gcsfs: `STORAGE_EMULATOR_HOST`; etils.epath: `EPATH_USE_TF=false`, so
its gs:// paths go through gcsfs, not tf.io.gfile, which cannot be pointed elsewhere). Opens the mirror as the
loop does, writes parameters and training checkpoints where `RunDir.checkpoint_path` puts them (on the remote,
through orbax), pushes and pulls the rest, and prints one JSON line of what it saw."""

from __future__ import annotations

import json
import sys


def standard_buckets() -> None:
    """gcsfs's default filesystem asks the Storage Control gRPC API whether a bucket is zonal or hierarchical,
    which the emulator lacks (a minute of retries): answer as GCS does for a standard bucket."""
    try:
        from gcsfs.extended_gcsfs import BucketType, ExtendedGcsFileSystem
    except ImportError:  # a gcsfs without it
        return

    async def standard(self, bucket):
        return BucketType.NON_HIERARCHICAL

    ExtendedGcsFileSystem._get_bucket_type = standard


def main(bucket: str, cache: str) -> None:
    standard_buckets()
    import jax
    import jax.numpy as jnp
    import numpy as np

    from next_jax.selftrain.run_mirror import RunMirror, open_mirror
    from next_jax.selftrain.rundir import RunDir
    from next_jax.train import checkpoints

    url = f"gs://{bucket}/run"
    mirror = open_mirror(url, f"{cache}/first")
    mirror.pull()
    run = RunDir(mirror.cache, label=mirror.url, orbax_root=mirror.orbax_root)
    # A small model's tree: several arrays in one OCDBT database, as a training checkpoint has.
    params = {"embed": jnp.linspace(-1, 1, 640).astype(jnp.bfloat16).reshape(10, 64),
              "layers": {str(i): {"attn": {k: jnp.full((64, 4, 16), i + j, jnp.float32) for j, k in enumerate("qkvo")},
                                  "mlp": jnp.arange(64 * 128, dtype=jnp.float32).reshape(64, 128) * i}
                         for i in range(2)}}
    zeros = jax.tree.map(jnp.zeros_like, params)

    def train_state(p, step: int) -> dict:
        """A training checkpoint's tree: parameters and an optimizer's moments (three times the arrays)."""
        scaled = jax.tree.map(lambda x: x * step, p)
        return {"params": scaled, "opt": {"mu": jax.tree.map(lambda x: x + 1, scaled), "nu": scaled,
                                          "count": jnp.asarray(step, jnp.int32)}, "step": jnp.asarray(step, jnp.int32)}

    def same(a, b) -> bool:
        return all(jax.tree.leaves(jax.tree.map(lambda x, y: x.dtype == y.dtype and np.array_equal(x, y), a, b)))

    out: dict = {}
    path = run.checkpoint_path("base", "params")
    out["params_path"] = path
    out["exists_before"] = checkpoints.exists(path)
    checkpoints.save_params(path, params)
    out["exists_after"] = checkpoints.exists(path)
    out["params_restored"] = same(checkpoints.restore_params(path, zeros), params)
    # `Runtime.save` redoing a save whose stage was never recorded: remove, then save at the same path.
    checkpoints.remove(path)
    out["exists_removed"] = checkpoints.exists(path)
    doubled = jax.tree.map(lambda x: x * 2, params)
    checkpoints.save_params(path, doubled)
    out["resaved_restored"] = same(checkpoints.restore_params(path, zeros), doubled)

    directory = run.checkpoint_path("base", "checkpoints")
    with checkpoints.CheckpointManager(directory, max_to_keep=2) as manager:
        out["latest_before"] = manager.latest_step()  # as `Trainer.restore_latest` does before training
        for step in (1, 2, 3):
            manager.save(step, train_state(params, step), metadata={"step": step})
        manager.wait_until_finished()
        out["steps"] = manager.all_steps()
    with checkpoints.CheckpointManager(directory, max_to_keep=2) as again:  # a resumed run's manager
        state, meta = again.restore(train_state(zeros, 0))
        out["latest"] = again.latest_step()
        out["restored_meta"] = meta
        out["restored_state"] = same(state, train_state(params, 3))

    # The stage's own files go through the mirror; orbax's directories are the remote's alone.
    run.check_config("a = 1\n")
    (mirror.cache / "base").mkdir(exist_ok=True)
    (mirror.cache / "base" / "metrics.json").write_text("{}\n")
    run.complete("base", {"steps": 3})
    out["pushed"] = mirror.push()
    fresh = RunMirror.from_url(url, f"{cache}/second", orbax_root=mirror.orbax_root)
    out["pulled"] = fresh.pull()
    out["pulled_files"] = sorted(str(p.relative_to(fresh.cache)) for p in fresh.cache.rglob("*") if p.is_file())
    out["pulled_state"] = RunDir(fresh.cache, orbax_root=fresh.orbax_root).result("base")
    out["remote_files"] = sorted(name[len(f"{bucket}/run/"):] for name in mirror.fs.find(f"{bucket}/run"))
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:3])
