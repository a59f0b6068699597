"""`Trainer`: owns the mesh-sharded train state, the jitted step, checkpoints and step metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import gin
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from next_jax import host_memory
from next_jax.models import partitioning
from next_jax.models.mesh import create_mesh
from next_jax.parallel.placement import place
from next_jax.train import checkpoints, flops, optimizers, state_sharding, step_builder
from next_jax.train.metric_writers import MetricWriter
from next_jax.train.train_step import TrainState

_CPU_CEILING: dict[str, float] = {}

logger = logging.getLogger(__name__)


def cpu_matmul_ceiling() -> float:
    """The measured f32 matmul FLOP/s of this host, measured once per process."""
    if "f32" not in _CPU_CEILING:
        _CPU_CEILING["f32"] = flops.measure_matmul_flops(dim=2048, dtype=jnp.float32)
    return _CPU_CEILING["f32"]


@gin.configurable(module="next_jax.train")
class Trainer:
    """Fine-tunes an nnx decoder on a mesh.

    The model passed in supplies the architecture and the initial parameters (random, or converted from
    HF by `load_pretrained`); its parameters are copied onto the mesh as float32 master weights while the
    forward pass runs in the model's own activation dtype (bf16 for `dtype='bfloat16'` configs). The step
    is jitted with explicit in/out shardings and donates the old state.

    `optimizer` and `learning_rate` default to gin's `make_optimizer()` / `make_schedule()`; pass
    `learning_rate` along with a ready-made `optimizer` to have it logged. `peak_flops` is the whole mesh's
    peak FLOP/s for MFU; None measures the f32 matmul ceiling on CPU and leaves MFU out on accelerators.

    `schedule_per_run`: each training run begun by `restart(..., num_steps=N)` gets the gin schedule with
    `total_steps=N`, so a decaying schedule ends at its end value on every run's last step whatever its
    length (a self-training run pretrains for hundreds of steps and fine-tunes for tens, several times), and
    `restart(..., peak_learning_rate=P)` gives a run its own peak. One step is compiled per distinct
    (length, peak), not per run.
    """

    def __init__(
        self,
        model: nnx.Module,
        mesh: jax.sharding.Mesh | None = None,
        *,
        optimizer: optax.GradientTransformation | None = None,
        learning_rate: optax.Schedule | float | None = None,
        num_microbatches: int = 1,
        z_loss: float | None = None,
        checkpoint_dir: str | None = None,
        max_to_keep: int = 3,
        save_every: int = 1000,
        async_checkpointing: bool = True,
        peak_flops: float | None = None,
        schedule_per_run: bool = False,
    ):
        self.mesh = mesh if mesh is not None else create_mesh()
        self.config = model.config
        self.z_loss = float(self.config.z_loss if z_loss is None else z_loss)
        self.num_microbatches = num_microbatches
        # The schedule is logged per step; it is unknown when only a ready-made optimizer is passed.
        self.schedule_per_run = schedule_per_run and learning_rate is None and optimizer is None
        if learning_rate is None and optimizer is None:
            learning_rate = optimizers.make_schedule()
        self._run_schedule: tuple | None = None  # (horizon, peak) of the current run's schedule; None: gin's
        self._parts_by_schedule: dict[tuple | None, tuple] = {}
        self._use_step(None, optimizer or optimizers.make_optimizer(learning_rate=learning_rate), learning_rate,
                       model=model)
        # Only the structure and metadata of the params State are kept; its arrays live in `self.state`.
        self._params_template = self._parts.params_template
        self._graphdef, self._rest = self._parts.graphdef, self._parts.rest
        self.param_shardings = self._parts.param_shardings
        self.state_shardings = self._parts.state_shardings
        params = place(
            jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), nnx.state(model, nnx.Param).to_pure_dict()),
            self.param_shardings,
        )
        self.num_params = flops.count_params(params)
        init_opt = jax.jit(self.optimizer.init, out_shardings=self.state_shardings.opt_state)
        self.state = TrainState(
            step=place(jnp.zeros((), jnp.int32), self.state_shardings.step),
            params=params,
            opt_state=init_opt(params),
        )
        self._eval_fn = self._parts.eval_fn
        self._jitted: dict[Any, Callable] = {}
        self.peak_flops = peak_flops
        on_cpu = jax.devices()[0].platform == "cpu"
        if peak_flops is None and on_cpu:
            self.peak_flops = cpu_matmul_ceiling()
        if on_cpu and not host_memory.applied():
            logger.info(
                "XLA:CPU maps and page-faults each step's scratch memory afresh; calling "
                "next_jax.host_memory.reuse_freed_memory() before jax starts makes steps faster"
            )
        self._checkpoint_options = dict(
            max_to_keep=max_to_keep, save_interval_steps=save_every, async_save=async_checkpointing
        )
        self._checkpoint_dir = checkpoint_dir
        self.checkpoints = self._make_checkpoints(checkpoint_dir)

    def _use_step(self, schedule: tuple | None, optimizer: optax.GradientTransformation | None = None,
                  learning_rate: optax.Schedule | float | None = None, *, model: nnx.Module | None = None) -> None:
        """Make the step of run schedule `schedule` = (horizon, peak) current (None: the one built at
        construction), building it once: its optimizer state has the same structure and shardings as every
        other's. A None horizon or peak keeps gin's `make_schedule` value."""
        if schedule not in self._parts_by_schedule:
            if model is None:  # shapes only: no second copy of the weights
                model = nnx.merge(self._graphdef, self._params_template, self._rest)
            if optimizer is None:
                horizon, peak = schedule
                overrides = {k: v for k, v in (("total_steps", horizon), ("peak_value", peak)) if v is not None}
                learning_rate = optimizers.make_schedule(**overrides)
                optimizer = optimizers.make_optimizer(learning_rate=learning_rate)
            parts = step_builder.build_step(
                model, self.mesh, optimizer, z_loss=self.z_loss,
                num_microbatches=self.num_microbatches, learning_rate=learning_rate,
            )
            self._parts_by_schedule[schedule] = (parts, optimizer, learning_rate)
        self._parts, self.optimizer, self.learning_rate = self._parts_by_schedule[schedule]
        self._run_schedule = schedule

    def _make_checkpoints(self, checkpoint_dir: str | None) -> checkpoints.CheckpointManager | None:
        if not checkpoint_dir:
            return None
        return checkpoints.CheckpointManager(checkpoint_dir, **self._checkpoint_options)

    # ----- compiled functions -----------------------------------------------------------------

    def _batch_shardings(self, batch: Mapping[str, Any]) -> dict[str, NamedSharding]:
        return state_sharding.batch_shardings(batch, self.mesh)

    def compiled_step(self, batch: Mapping[str, Any]) -> Callable:
        """The step compiled ahead of time for batches shaped like `batch` (once per shape set), so that
        step timings never include compilation."""
        key = ("train", self._run_schedule, tuple(sorted((k, tuple(np.shape(v))) for k, v in batch.items())))
        if key not in self._jitted:
            abstract = step_builder.abstract_batch(batch, self.mesh)
            self._jitted[key] = step_builder.lower_step(self._parts, abstract).compile()
        return self._jitted[key]

    def put_batch(self, batch: Mapping[str, Any]) -> dict[str, jax.Array]:
        """Host arrays -> device arrays split over the data-parallel axes. With several processes every one
        passes the same global batch and contributes the rows its devices hold."""
        return place({k: np.asarray(v) for k, v in batch.items()}, self._batch_shardings(batch))

    # ----- stepping -----------------------------------------------------------------------------

    def train_step(self, batch: Mapping[str, Any]) -> dict[str, float]:
        """One optimizer step on `batch`; returns host metrics including throughput and MFU."""
        step_fn = self.compiled_step(batch)
        device_batch = self.put_batch(batch)
        start = time.perf_counter()
        with partitioning.partitioned(self.mesh):
            self.state, metrics = step_fn(self.state, device_batch)
        metrics = jax.device_get(metrics)
        elapsed = time.perf_counter() - start
        return self._add_throughput({k: float(v) for k, v in metrics.items()}, batch, elapsed)

    def eval_step(self, batch: Mapping[str, Any]) -> dict[str, float]:
        """Loss and accuracy on target tokens without updating."""
        key = ("eval", tuple(sorted((k, tuple(np.shape(v))) for k, v in batch.items())))
        if key not in self._jitted:
            self._jitted[key] = jax.jit(
                self._eval_fn,
                in_shardings=(self.param_shardings, self._batch_shardings(batch)),
                out_shardings=NamedSharding(self.mesh, PartitionSpec()),
            )
        with partitioning.partitioned(self.mesh):
            metrics = self._jitted[key](self.state.params, self.put_batch(batch))
        return {k: float(v) for k, v in jax.device_get(metrics).items()}

    def step_flops(self, batch_size: int, seq_len: int) -> float:
        """Model FLOPs of one training step on a `[batch_size, seq_len]` batch."""
        cfg = self.config
        counts = flops.decoder_flops(
            matmul_params=flops.matmul_param_count(
                self.num_params, cfg.vocab_size, cfg.embed_dim, cfg.tie_embeddings
            ),
            num_layers=cfg.num_layers,
            num_heads=cfg.num_heads,
            head_dim=cfg.head_dim,
            seq_len=seq_len,
        )
        return counts.train_per_token * batch_size * seq_len

    def _add_throughput(self, metrics: dict[str, float], batch: Mapping[str, Any], seconds: float) -> dict:
        batch_size, seq_len = np.shape(batch["decoder_input_tokens"])[:2]
        tokens = batch_size * seq_len
        model_flops = self.step_flops(batch_size, seq_len) / seconds
        metrics.update(
            step_time_s=seconds,
            tokens_per_s=tokens / seconds,
            tflops=model_flops / 1e12,
        )
        if self.peak_flops:
            metrics["mfu"] = flops.mfu(model_flops, self.peak_flops)
        return metrics

    # ----- checkpoints --------------------------------------------------------------------------

    @property
    def step(self) -> int:
        return int(jax.device_get(self.state.step))

    def save(self, *, metadata: dict | None = None, force: bool = True) -> bool:
        """Start an async save of the current state (needs `checkpoint_dir`)."""
        if self.checkpoints is None:
            raise ValueError("Trainer has no checkpoint_dir")
        return self.checkpoints.save(self.step, self.state, metadata=metadata, force=force)

    def restore_latest(self) -> int | None:
        """Resume from the newest checkpoint (onto this trainer's mesh); returns its step or None."""
        if self.checkpoints is None or self.checkpoints.latest_step() is None:
            return None
        target = checkpoints.with_shardings(checkpoints.abstract_tree(self.state), self.state_shardings)
        self.state, _ = self.checkpoints.restore(target)
        return self.step

    def load_params(self, params_dir: str) -> None:
        """Start from parameters saved by `checkpoints.save_params` (e.g. a converted HF checkpoint),
        restored straight onto this mesh; the optimizer state and the step are reset (see `restart`)."""
        target = checkpoints.with_shardings(
            checkpoints.abstract_tree(self.state.params), self.param_shardings
        )
        self.restart(checkpoints.restore_params(params_dir, target), checkpoint_dir=self._checkpoint_dir)

    def restart(self, params: Any, *, checkpoint_dir: str | None, num_steps: int | None = None,
                peak_learning_rate: float | None = None) -> None:
        """Begin a new training run from `params` (a pure dict like `state.params`, on device or host):
        step 0, fresh optimizer state, and checkpoints in `checkpoint_dir` (None: no checkpoints). With
        `schedule_per_run`, `num_steps` is the run's schedule horizon and `peak_learning_rate` (None: gin's)
        its peak, so that a fine-tune can run at a lower rate than the pretraining before it.

        A new run gets its own checkpoint directory because orbax refuses to save a step it already holds:
        a run restarted at step 0 in the directory of an earlier one would silently keep the earlier
        weights as "latest". Passing the directory a previous run used is therefore an error.
        """
        if checkpoint_dir is not None and self.checkpoints is not None:
            if str(checkpoint_dir) == str(self._checkpoint_dir) and self.checkpoints.latest_step():
                raise ValueError(
                    f"{checkpoint_dir} already holds checkpoints of an earlier run (step "
                    f"{self.checkpoints.latest_step()}); give the new run its own directory"
                )
        if peak_learning_rate is not None and not self.schedule_per_run:
            raise ValueError("a per-run peak learning rate needs Trainer.schedule_per_run")
        if self.schedule_per_run and (num_steps or peak_learning_rate is not None):
            self._use_step((int(num_steps) if num_steps else None,
                            None if peak_learning_rate is None else float(peak_learning_rate)))
        # A copy: the first step donates the state's buffers, and the caller keeps `params` (the base model
        # that every iteration restarts from).
        params = jax.tree.map(
            jnp.copy,
            place(jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params), self.param_shardings),
        )
        init_opt = jax.jit(self.optimizer.init, out_shardings=self.state_shardings.opt_state)
        replicated = NamedSharding(self.mesh, PartitionSpec())
        self.state = TrainState(
            step=place(jnp.zeros((), jnp.int32), replicated),
            params=params,
            opt_state=init_opt(params),
        )
        if self.checkpoints is not None:
            self.checkpoints.close()
        self._checkpoint_dir = checkpoint_dir
        self.checkpoints = self._make_checkpoints(checkpoint_dir)

    def model(self) -> nnx.Module:
        """The decoder with a copy of the current parameters (for sampling or export).

        A copy, because the next train step donates (frees) the state's own buffers.
        """
        return self.model_from(self.state.params)

    def model_from(self, params: dict) -> nnx.Module:
        """The decoder holding a copy of `params` (a pure dict like `state.params`, e.g. a saved iteration)."""
        state = nnx.State(self._params_template)
        nnx.replace_by_pure_dict(state, jax.tree.map(jnp.copy, params))
        return nnx.merge(self._graphdef, state, self._rest)

    # ----- loop ---------------------------------------------------------------------------------

    def fit(
        self,
        batches: Iterable[Mapping[str, Any]],
        num_steps: int | None = None,
        *,
        writer: MetricWriter | None = None,
        skip_seen_batches: bool = True,
        on_step: Callable[[int, dict[str, float]], None] | None = None,
    ) -> dict[str, float]:
        """Train until `state.step == num_steps` or until `batches` ends, whichever comes first
        (`num_steps=None`: train on every batch, e.g. a finite iterator over N epochs); checkpoint every
        `save_every` steps and at the end.

        After `restore_latest`, `skip_seen_batches` drops the batches the restored steps already consumed,
        so a deterministic input pipeline resumes exactly where the crashed run was.
        """
        iterator = iter(batches)
        if skip_seen_batches:
            for _ in range(self.step):
                if next(iterator, None) is None:
                    break
        metrics: dict[str, float] = {}
        while num_steps is None or self.step < num_steps:
            batch = next(iterator, None)
            if batch is None:  # a finite input ends training cleanly
                break
            metrics = self.train_step(batch)
            step = self.step
            if writer is not None:
                writer.write_scalars(step, metrics)
            if self.checkpoints is not None:
                self.checkpoints.save(step, self.state, metadata={"step": step})
            if on_step is not None:
                on_step(step, metrics)
        if self.checkpoints is not None:
            if self.step and self.checkpoints.latest_step() != self.step:
                self.checkpoints.save(self.step, self.state, metadata={"step": self.step}, force=True)
            self.checkpoints.wait_until_finished()
        return metrics

    def close(self) -> None:
        """Finish background checkpoint writes."""
        if self.checkpoints is not None:
            self.checkpoints.close()
