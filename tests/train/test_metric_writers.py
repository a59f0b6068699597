"""TensorBoard event files and the console progress output."""

import io

import pytest

from next_jax.train.metric_writers import ConsoleWriter, MultiWriter, TensorBoardWriter, format_scalars


def read_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    acc = event_accumulator.EventAccumulator(logdir)
    acc.Reload()
    return {
        tag: [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]
        for tag in acc.Tags()["tensors"]
    }


def test_tensorboard_and_console_receive_every_step(tmp_path):
    stream = io.StringIO()
    tb = TensorBoardWriter(str(tmp_path))
    console = ConsoleWriter(total_steps=4, print_every=2, stream=stream)
    writer = MultiWriter([tb, console])
    for step in range(1, 5):
        writer.write_scalars(step, {"loss": 1.0 / step, "accuracy": 0.1 * step})
    writer.close()
    scalars = read_scalars(str(tmp_path))
    assert [s for s, _ in scalars["loss"]] == [1, 2, 3, 4]
    assert scalars["loss"][3][1] == pytest.approx(0.25)
    assert scalars["accuracy"][1][1] == pytest.approx(0.2)
    text = stream.getvalue()
    assert "step 2: loss=0.5 accuracy=0.2" in text and "step 4:" in text and "step 3:" not in text
    assert "4/4" in text  # the progress bar reached the end


def test_format_scalars_orders_and_filters():
    assert format_scalars({"a": 1.23456, "b": 2.0}, ["b", "missing", "a"]) == "b=2 a=1.235"
