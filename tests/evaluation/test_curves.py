"""Training curves read back from TensorBoard event files and drawn."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow.core.framework import summary_pb2
from tensorflow.core.util import event_pb2

from ctx_tf.evaluation import curves


def _write_tensor_scalars(directory, tag_values, steps):
    """Float32 scalar tensors, as the trainer writes them."""
    writer = tf.summary.create_file_writer(str(directory))
    with writer.as_default():
        for i, step in enumerate(steps):
            for tag, values in tag_values.items():
                if values[i] is not None:
                    tf.summary.write(tag, tf.constant(values[i], tf.float32), step=step)
    writer.close()


def _write_simple_values(path, tag, steps, values):
    """The tf.compat.v1 form: Summary.Value.simple_value events."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(event_pb2.Event(file_version="brain.Event:2").SerializeToString())
        for step, value in zip(steps, values):
            summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(
                tag=tag, simple_value=value)])
            writer.write(event_pb2.Event(step=step, wall_time=1.0, summary=summary)
                         .SerializeToString())


def _f32(values):
    return [float(np.float32(v)) for v in values]


@pytest.fixture
def run_summaries(tmp_path, rng_seed):
    rng = np.random.RandomState(rng_seed)
    steps = list(range(0, 300, 10))
    n = len(steps)
    loss = list(2.0 * np.exp(-np.arange(n) / 10) + 0.1 * rng.rand(n))
    accuracy = list(np.clip(0.2 + 0.6 * np.arange(n) / n + 0.05 * rng.rand(n), 0, 1))
    rate = list(1e-3 * np.minimum(1.0, (np.arange(n) + 1) / 20) * 0.97 ** np.arange(n))
    valid = [0.3 + 0.01 * i if i % 10 == 0 else None for i in range(n)]
    ci = [0.02 if v is not None else None for v in valid]
    _write_tensor_scalars(tmp_path, {curves.TRAIN_LOSS: loss, curves.TRAIN_ACCURACY: accuracy,
                                     curves.LEARNING_RATE: rate, curves.VALID_MEAN: valid,
                                     curves.VALID_CI95: ci}, steps)
    return tmp_path, steps, loss, accuracy, rate, valid


def test_read_scalars_returns_the_written_steps_and_values(run_summaries):
    directory, steps, loss, accuracy, rate, valid = run_summaries
    scalars = curves.read_scalars(directory)
    assert set(scalars) == {curves.TRAIN_LOSS, curves.TRAIN_ACCURACY, curves.LEARNING_RATE,
                            curves.VALID_MEAN, curves.VALID_CI95}
    for tag, values in [(curves.TRAIN_LOSS, loss), (curves.TRAIN_ACCURACY, accuracy),
                        (curves.LEARNING_RATE, rate)]:
        got_steps, got_values = scalars[tag]
        assert got_steps.dtype == np.int64 and got_steps.tolist() == steps
        assert got_values.tolist() == _f32(values), tag  # float32 written, read back exactly
    valid_steps, valid_values = scalars[curves.VALID_MEAN]
    assert valid_steps.tolist() == [s for s, v in zip(steps, valid) if v is not None]
    assert valid_values.tolist() == _f32([v for v in valid if v is not None])
    only = curves.read_scalars(directory, tags=[curves.TRAIN_LOSS])
    assert list(only) == [curves.TRAIN_LOSS]


def test_simple_values_resumed_runs_and_truncated_files(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    # File names order the writes: the resumed run (second file) rewrites steps 20 and 30.
    _write_simple_values(run / "events.out.tfevents.1000.host", "train/loss",
                         [0, 10, 20, 30], [4.0, 3.0, 2.5, 2.25])
    _write_simple_values(run / "events.out.tfevents.2000.host", "train/loss",
                         [20, 30, 40], [2.0, 1.5, 1.25])
    steps, values = curves.read_scalars(run)["train/loss"]
    assert steps.tolist() == [0, 10, 20, 30, 40]
    assert values.tolist() == [4.0, 3.0, 2.0, 1.5, 1.25]

    # A run killed mid-write: the truncated last record ends the file, the rest is read.
    data = (run / "events.out.tfevents.2000.host").read_bytes()
    (run / "events.out.tfevents.2000.host").write_bytes(data[:-7])
    steps, values = curves.read_scalars(run)["train/loss"]
    assert steps.tolist() == [0, 10, 20, 30]
    assert values.tolist() == [4.0, 3.0, 2.0, 1.5]

    # One file, or a list of files, instead of a directory.
    single = curves.read_scalars(str(run / "events.out.tfevents.1000.host"))
    assert single["train/loss"][1].tolist() == [4.0, 3.0, 2.5, 2.25]
    both = curves.read_scalars(sorted(str(p) for p in run.iterdir()))
    assert both["train/loss"][0].tolist() == [0, 10, 20, 30]


def test_missing_summaries_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no TensorBoard event files"):
        curves.read_scalars(tmp_path)
    with pytest.raises(FileNotFoundError, match="nope"):
        curves.read_scalars(tmp_path / "nope")
    _write_tensor_scalars(tmp_path, {"episode/way": [5.0]}, [0])
    with pytest.raises(ValueError, match="found: episode/way"):
        curves.training_curves_png(tmp_path)


def test_curves_figure_has_the_four_panels(run_summaries):
    directory = run_summaries[0]
    scalars = curves.read_scalars(directory)
    figure = curves.curves_figure(scalars, title="run x")
    axes = figure.get_axes()
    assert [a.get_title() for a in axes] == list(curves.PANELS)
    loss_axes, accuracy_axes, valid_axes, rate_axes = axes
    # Raw and smoothed training curves; the validation mean with its CI band.
    assert len(loss_axes.get_lines()) == 2 and len(accuracy_axes.get_lines()) == 2
    np.testing.assert_allclose(accuracy_axes.get_lines()[0].get_ydata(),
                               100 * scalars[curves.TRAIN_ACCURACY][1])
    np.testing.assert_allclose(valid_axes.get_lines()[0].get_ydata(),
                               100 * scalars[curves.VALID_MEAN][1])
    assert len(valid_axes.collections) == 1  # the 95% CI band
    assert rate_axes.get_yscale() == "log"  # warm-up and decay span decades
    assert [t.get_text() for t in figure.texts] == ["run x"]


def test_training_curves_png(run_summaries):
    png = curves.training_curves_png(run_summaries[0], size=(900, 600))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(png))
    assert image.size == (900, 600)


def test_a_missing_curve_is_labelled_not_recorded(tmp_path):
    _write_tensor_scalars(tmp_path, {curves.TRAIN_LOSS: [1.0, 0.5]}, [0, 1])
    figure = curves.curves_figure(curves.read_scalars(tmp_path))
    texts = [t.get_text() for a in figure.get_axes() for t in a.texts]
    assert texts == [f"{curves.TRAIN_ACCURACY} not recorded", f"{curves.VALID_MEAN} not recorded",
                     f"{curves.LEARNING_RATE} not recorded"]
