"""Runs in a subprocess with 8 simulated CPU devices: the same training on one device and on a
(fsdp=2, model=4) mesh, and a checkpoint written on that mesh restored onto other meshes.
Prints one JSON line of results."""

import os
import sys

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
sys.path.insert(0, os.path.dirname(__file__))

import json  # noqa: E402
import tempfile  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402
from train_fixtures import TINY, make_batch  # noqa: E402

from next_jax.models.decoder import Decoder  # noqa: E402
from next_jax.models.mesh import create_mesh  # noqa: E402
from next_jax.train.optimizers import make_optimizer  # noqa: E402
from next_jax.train.trainer import Trainer  # noqa: E402

STEPS = 3


def trainer_on(mesh, checkpoint_dir=None, num_microbatches=1, optimizer="adafactor") -> Trainer:
    return Trainer(
        Decoder(TINY, rngs=nnx.Rngs(0)),
        mesh,
        optimizer=make_optimizer(optimizer, 1e-2),
        learning_rate=1e-2,
        num_microbatches=num_microbatches,
        checkpoint_dir=checkpoint_dir,
        peak_flops=1.0,
    )


def run(trainer: Trainer) -> list[float]:
    batch = make_batch(0)
    return [trainer.train_step(batch)["loss"] for _ in range(STEPS)]


def host_params(trainer: Trainer) -> dict:
    return jax.tree.map(np.asarray, trainer.state.params)


def max_diff(a: dict, b: dict) -> float:
    return max(
        float(np.max(np.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def main() -> None:
    devices = jax.devices()
    single = create_mesh(devices=devices[:1])
    mesh_2x4 = create_mesh(data=1, fsdp=2, model=4)
    results: dict = {"num_devices": len(devices)}

    for opt in ("adafactor", "adamw"):
        one = trainer_on(single, optimizer=opt)
        results[f"{opt}_single_losses"] = run(one)
        with tempfile.TemporaryDirectory() as ckpt:
            sharded = trainer_on(mesh_2x4, checkpoint_dir=ckpt, num_microbatches=2, optimizer=opt)
            results[f"{opt}_sharded_losses"] = run(sharded)
            results[f"{opt}_param_max_diff"] = max_diff(host_params(one), host_params(sharded))
            if opt == "adafactor":
                q = sharded.state.params["layers"][0]["attn"]["q"]
                results["q_spec"] = [str(a) for a in q.sharding.spec]
                results["q_shard_shape"] = list(q.addressable_shards[0].data.shape)
                opt_specs = {str(x.sharding.spec) for x in jax.tree.leaves(sharded.state.opt_state)}
                results["opt_state_sharded"] = any("model" in s or "fsdp" in s for s in opt_specs)
                sharded.save()
                sharded.checkpoints.wait_until_finished()
                # Restore the (2, 4)-mesh checkpoint onto an 8-way data-parallel mesh and onto one device.
                for name, mesh in (("data8", create_mesh(data=8)), ("single", single)):
                    other = trainer_on(mesh, checkpoint_dir=ckpt)
                    results[f"restore_{name}_step"] = other.restore_latest()
                    results[f"restore_{name}_diff"] = max_diff(host_params(sharded), host_params(other))
                    results[f"restore_{name}_devices"] = len(
                        other.state.params["embedder"]["embedding"].sharding.device_set
                    )
                    # It also trains on from there, identically to the trainer it was saved from.
                    batch = make_batch(99)
                    results[f"restore_{name}_next_loss"] = other.train_step(batch)["loss"]
                results["saved_next_loss"] = sharded.train_step(make_batch(99))["loss"]
                sharded.close()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
