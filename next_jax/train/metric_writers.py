"""Where per-step metrics go: TensorBoard event files and the console (a tqdm progress bar).

TensorBoard output uses `tensorboard.summary.Writer`, which writes event files without importing
TensorFlow, so the trainer does not pay TensorFlow's start-up for logging.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Protocol, TextIO

from tensorboard.summary import Writer as _TensorBoardFileWriter
from tqdm.auto import tqdm


class MetricWriter(Protocol):
    """Something that accepts a step's scalar metrics."""

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None: ...

    def close(self) -> None: ...


class TensorBoardWriter:
    """Scalars to TensorBoard event files under `logdir`."""

    def __init__(self, logdir: str):
        self.logdir = logdir
        self._writer = _TensorBoardFileWriter(logdir)

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        for name, value in scalars.items():
            self._writer.add_scalar(name, float(value), step=step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def format_scalars(scalars: Mapping[str, float], keys: Sequence[str] | None = None) -> str:
    """`loss=2.3104 acc=0.412 ...` with compact number formatting."""
    items = [(k, scalars[k]) for k in (keys or scalars) if k in scalars]
    return " ".join(f"{k}={v:.4g}" for k, v in items)


class ConsoleWriter:
    """A tqdm progress bar over `total_steps`; every `print_every` steps a full metrics line is printed.

    The bar's postfix shows the keys in `bar_keys` after each step, so a run is legible live.
    """

    def __init__(
        self,
        total_steps: int | None = None,
        *,
        initial_step: int = 0,
        print_every: int = 10,
        bar_keys: Sequence[str] = ("loss", "accuracy", "tokens_per_s", "mfu"),
        stream: TextIO | None = None,
        disable_bar: bool = False,
    ):
        self.print_every = max(print_every, 1)
        self.bar_keys = tuple(bar_keys)
        self.stream = stream or sys.stderr
        self._bar = tqdm(
            total=total_steps, initial=initial_step, file=self.stream, disable=disable_bar, unit="step"
        )
        self._last_step = initial_step

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        self._bar.update(max(step - self._last_step, 0))
        self._last_step = step
        self._bar.set_postfix_str(format_scalars(scalars, self.bar_keys), refresh=False)
        if step % self.print_every == 0:
            # tqdm.write keeps the bar intact below the printed line.
            tqdm.write(f"step {step}: {format_scalars(scalars)}", file=self.stream)

    def close(self) -> None:
        self._bar.close()


class MultiWriter:
    """Fans scalars out to several writers."""

    def __init__(self, writers: Sequence[MetricWriter]):
        self.writers = list(writers)

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        for writer in self.writers:
            writer.write_scalars(step, scalars)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
