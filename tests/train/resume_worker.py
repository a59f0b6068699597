"""Subprocess body for the crash/resume test: train the tiny model with checkpoints, optionally dying
abruptly (os._exit, no cleanup) right after a given step, and dump the final parameters."""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

import jax  # noqa: E402
from flax import nnx  # noqa: E402
from train_fixtures import TINY, make_batch  # noqa: E402

from next_jax.models.decoder import Decoder  # noqa: E402
from next_jax.train.optimizers import make_optimizer  # noqa: E402
from next_jax.train.trainer import Trainer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint_dir", default=None)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--crash_after", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    trainer = Trainer(
        Decoder(TINY, rngs=nnx.Rngs(0)),
        optimizer=make_optimizer("adamw", 3e-3),
        learning_rate=3e-3,
        checkpoint_dir=args.checkpoint_dir,
        save_every=2,
        max_to_keep=2,
        peak_flops=1.0,
    )
    resumed = trainer.restore_latest()

    def on_step(step: int, metrics: dict) -> None:
        if step == args.crash_after:
            os._exit(17)  # a crash: no wait for the async save in flight, no cleanup

    batches = (make_batch(seed) for seed in range(10**6))
    trainer.fit(batches, args.steps, on_step=on_step)
    trainer.close()
    flat = {
        "/".join(map(str, k)): np.asarray(v)
        for k, v in jax.tree_util.tree_flatten_with_path(trainer.state.params)[0]
    }
    np.savez(args.out, resumed=-1 if resumed is None else resumed, **flat)


if __name__ == "__main__":
    main()
