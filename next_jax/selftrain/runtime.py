"""One decoder that both fine-tunes and samples: a `Trainer` (one compiled step for every training stage of
the run) and a `Sampler` (compiled once per shape; new parameters go in as arguments, device to device, never
through host memory or disk).

Training is one SPMD program over every process's devices. Sampling is per process: each samples its own
share of the problems on its own devices (a mesh over `jax.local_devices()`) from a whole copy of the
parameters, so processes never wait for each other while sampling and may make different numbers of
sampler calls. The model must therefore fit one host's devices for sampling. With one process both meshes
are the same."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from next_jax.decode.sampler import Sampler
from next_jax.models.mesh import create_mesh
from next_jax.parallel import distributed
from next_jax.parallel.placement import local_replica
from next_jax.train import checkpoints
from next_jax.train.metric_writers import ConsoleWriter, MultiWriter, TensorBoardWriter
from next_jax.train.trainer import Trainer

log = logging.getLogger(__name__)


class ModelRuntime:
    """Holds the run's trainer and sampler over one model architecture."""

    def __init__(self, model: nnx.Module, vocabulary: Any, *, length_buckets: tuple[int, ...],
                 mesh: jax.sharding.Mesh | None = None, show_progress: bool = True) -> None:
        self.mesh = mesh if mesh is not None else create_mesh()
        self.vocabulary = vocabulary
        self.config = model.config
        self.trainer = Trainer(model, self.mesh)
        pad = vocabulary.pad_id if vocabulary.pad_id is not None else 0
        self.sample_mesh = self.mesh if jax.process_count() == 1 else process_mesh(self.mesh)
        self.sampler = Sampler(model, eos_id=vocabulary.eos_id, pad_id=pad, mesh=self.sample_mesh,
                               length_buckets=length_buckets)
        self.show_progress = show_progress
        self.initial_params = self.copy_params()

    def copy_params(self) -> dict:
        """A device copy of the trainer's current parameters (the next step donates its own buffers)."""
        return jax.tree.map(jnp.copy, self.trainer.state.params)

    def sample_with(self, params: dict) -> None:
        """Sample from `params` (laid out like the trainer's); every process calls this alike."""
        self.sampler.set_params(local_replica(params, self.sample_mesh))

    def train(self, params: dict, batches_fn, *, num_steps: int, checkpoint_dir: str, params_dir: str,
              log_dir: Path, on_step=None, peak_learning_rate: float | None = None) -> dict:
        """Train from `params` for `num_steps` on `batches_fn()` with checkpoints in `checkpoint_dir` (resuming
        from the newest one there), then save the final parameters to `params_dir` (paths or gs:// URLs).
        `peak_learning_rate` (needs `Trainer.schedule_per_run`) overrides the schedule's peak for this run."""
        self.trainer.restart(params, checkpoint_dir=checkpoint_dir, num_steps=num_steps,
                             peak_learning_rate=peak_learning_rate)
        resumed = self.trainer.restore_latest()
        if resumed:
            log.info("resuming training in %s from step %d", checkpoint_dir, resumed)
        writers = [TensorBoardWriter(str(log_dir))] if distributed.is_main() else []
        if self.show_progress and distributed.is_main():
            writers.append(ConsoleWriter(num_steps, initial_step=self.trainer.step, print_every=max(1, num_steps // 5)))
        writer = MultiWriter(writers)
        try:
            metrics = self.trainer.fit(batches_fn(), num_steps, writer=writer, on_step=on_step)
        finally:
            writer.close()
        final = self.copy_params()
        self.save(final, params_dir)
        return metrics

    @staticmethod
    def save(params: dict, path: str) -> None:
        """Write `params` to `path` (a path or gs:// URL; every process calls this: each writes the pieces its
        devices hold)."""
        if distributed.is_main():  # a save whose stage was never recorded complete: redo it
            checkpoints.remove(path)
        parent, name = path.rstrip("/").rsplit("/", 2)[-2:]
        distributed.barrier(f"save {parent}/{name}")  # a name alike on every host
        checkpoints.save_params(path, params)

    def load(self, path: str) -> dict:
        """Parameters saved by `save`, placed like the trainer's."""
        return checkpoints.restore_params(path, self.trainer.state.params)

    def model_with(self, params: dict) -> nnx.Module:
        """A decoder holding a copy of `params` on this process's devices (for export); every process calls
        this alike."""
        return self.trainer.model_from(local_replica(params, self.sample_mesh))


def process_mesh(global_mesh: jax.sharding.Mesh) -> jax.sharding.Mesh:
    """This process's sampling mesh: its own devices, data parallel, keeping the global mesh's `model` axis
    where it divides them (a model split over chips for training stays split on one host)."""
    devices = jax.local_devices()
    model = global_mesh.shape["model"]
    return create_mesh(data=-1, fsdp=1, model=model if len(devices) % model == 0 else 1, devices=devices)
