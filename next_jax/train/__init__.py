"""Trainer, optimizers, checkpoints and step metrics for fine-tuning the decoder on a mesh."""

from next_jax.train.checkpoints import CheckpointManager, restore_params, save_params
from next_jax.train.loss import LossSums, cross_entropy_sums
from next_jax.train.metric_writers import ConsoleWriter, MultiWriter, TensorBoardWriter
from next_jax.train.optimizers import make_optimizer, make_schedule
from next_jax.train.train_step import BATCH_FEATURES, TrainState, make_train_step
from next_jax.train.trainer import Trainer

__all__ = [
    "BATCH_FEATURES",
    "CheckpointManager",
    "ConsoleWriter",
    "LossSums",
    "MultiWriter",
    "TensorBoardWriter",
    "TrainState",
    "Trainer",
    "cross_entropy_sums",
    "make_optimizer",
    "make_schedule",
    "make_train_step",
    "restore_params",
    "save_params",
]
