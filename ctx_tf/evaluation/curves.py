"""Training curves of a run, read from the TensorBoard event files of its summary directory.

    png_bytes = training_curves_png("runs/ctx/summaries")

Four panels: training loss, training accuracy, validation accuracy (mean with its 95% CI as a
band) and learning rate, against the training step. The trainer writes these as float32 scalar
tensors (`train/loss`, `train/accuracy`, `valid_acc/mean`, `valid_acc/ci95`,
`train/learning_rate`; accuracies as fractions); `simple_value` summaries (tf.compat.v1, older
TensorBoard writers) are read too.
"""

import numpy as np
import tensorflow as tf
from tensorflow.core.util import event_pb2

from ctx_tf import figures

TRAIN_LOSS = "train/loss"
TRAIN_ACCURACY = "train/accuracy"
VALID_MEAN = "valid_acc/mean"
VALID_CI95 = "valid_acc/ci95"
LEARNING_RATE = "train/learning_rate"
EVENT_FILE_PATTERN = "events.out.tfevents.*"
DEFAULT_SIZE = (1200, 800)
# TensorBoard-style exponential smoothing of the noisy per-step training curves.
SMOOTHING = 0.9
_MIN_POINTS_TO_SMOOTH = 20


def event_files(path):
    """The event files of `path`: a summary directory (its `events.out.tfevents.*` files, in
    name order, i.e. in the order they were started), one event file, or a list of these."""
    if isinstance(path, (list, tuple)):
        files = []
        for p in path:
            files += event_files(p)
        return files
    path = str(path)
    if tf.io.gfile.isdir(path):
        files = sorted(tf.io.gfile.glob(path.rstrip("/") + "/" + EVENT_FILE_PATTERN))
        if not files:
            raise FileNotFoundError(f"no TensorBoard event files ({EVENT_FILE_PATTERN}) in "
                                    f"{path}")
        return files
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"no such summary directory or event file: {path}")
    return [path]


def _scalar(value):
    """The float of a scalar summary value, or None when it holds something else."""
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return float(value.simple_value)
    if kind == "tensor":
        try:
            array = tf.make_ndarray(value.tensor)
        except (TypeError, ValueError):
            return None
        if array.size == 1 and np.issubdtype(array.dtype, np.number):
            return float(array.reshape(()))
    return None


def _records(path):
    """Serialized events of one file; a run killed mid-write leaves a truncated last record,
    which ends the file rather than failing the read."""
    try:
        for record in tf.data.TFRecordDataset(path):
            yield record.numpy()
    except tf.errors.DataLossError:
        return


def read_scalars(path, tags=None):
    """`{tag: (steps, values)}` of every scalar summary under `path` (see `event_files`).

    `steps` is an int64 array in increasing order and `values` the float64 values there; when
    a step was written more than once (a resumed run repeats the steps after its last
    checkpoint) the last write wins. `tags` restricts the result to those tags.
    """
    by_tag = {}
    for filename in event_files(path):
        for serialized in _records(filename):
            event = event_pb2.Event.FromString(serialized)
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                if tags is not None and value.tag not in tags:
                    continue
                number = _scalar(value)
                if number is not None:
                    by_tag.setdefault(value.tag, {})[int(event.step)] = number
    result = {}
    for tag, points in by_tag.items():
        steps = np.array(sorted(points), dtype=np.int64)
        result[tag] = (steps, np.array([points[s] for s in steps], dtype=np.float64))
    return result


def smooth(values, weight=SMOOTHING):
    """Debiased exponential moving average of `values` (what TensorBoard draws)."""
    smoothed = np.empty(len(values), dtype=np.float64)
    average = 0.0
    for i, v in enumerate(values):
        average = weight * average + (1.0 - weight) * v
        smoothed[i] = average / (1.0 - weight ** (i + 1))
    return smoothed


def _not_recorded(axes, tag):
    axes.text(0.5, 0.5, f"{tag} not recorded", ha="center", va="center",
              transform=axes.transAxes, color="0.4")
    axes.set_xticks([])
    axes.set_yticks([])


def _training_panel(axes, scalars, tag, scale, color):
    if tag not in scalars:
        _not_recorded(axes, tag)
        return
    steps, values = scalars[tag]
    values = values * scale
    if len(values) >= _MIN_POINTS_TO_SMOOTH:
        axes.plot(steps, values, color=color, alpha=0.3, linewidth=0.8, label="per step")
        axes.plot(steps, smooth(values), color=color, linewidth=1.6,
                  label=f"smoothed ({SMOOTHING:g})")
        axes.legend(frameon=False, fontsize=9)
    else:
        axes.plot(steps, values, color=color, linewidth=1.6, marker="o", markersize=3)


def _validation_panel(axes, scalars):
    if VALID_MEAN not in scalars:
        _not_recorded(axes, VALID_MEAN)
        return
    steps, means = scalars[VALID_MEAN]
    axes.plot(steps, 100.0 * means, color=figures.color(2), marker="o", markersize=3,
              linewidth=1.6, label="mean")
    if VALID_CI95 in scalars:
        ci_at = dict(zip(*scalars[VALID_CI95]))
        has_ci = np.array([s in ci_at for s in steps])
        if has_ci.any():
            ci = np.array([ci_at[s] for s in steps[has_ci]])
            mean = means[has_ci]
            axes.fill_between(steps[has_ci], 100.0 * (mean - ci), 100.0 * (mean + ci),
                              color=figures.color(2), alpha=0.25, linewidth=0, label="95% CI")
    axes.legend(frameon=False, fontsize=9)


def _learning_rate_panel(axes, scalars):
    if LEARNING_RATE not in scalars:
        _not_recorded(axes, LEARNING_RATE)
        return
    steps, rates = scalars[LEARNING_RATE]
    axes.plot(steps, rates, color=figures.color(3), linewidth=1.6)
    positive = rates[rates > 0]
    # A schedule spanning decades (warm-up, decay) reads on a log axis.
    if len(positive) == len(rates) and positive.max() > 10 * positive.min():
        axes.set_yscale("log")


PANELS = ("training loss", "training accuracy (%)", "validation accuracy (%)", "learning rate")


def curves_figure(scalars, size=DEFAULT_SIZE, title=""):
    """The four-panel Figure of `scalars` (what `read_scalars` returns); the panels' titles
    are `PANELS`."""
    wanted = (TRAIN_LOSS, TRAIN_ACCURACY, VALID_MEAN, LEARNING_RATE)
    if not any(tag in scalars for tag in wanted):
        raise ValueError(f"none of the training curves ({', '.join(wanted)}) are in the "
                         f"summaries; found: {', '.join(sorted(scalars)) or 'no scalars'}")
    figure = figures.new_figure(size)
    grid = figure.subplots(2, 2, squeeze=False)
    loss_axes, accuracy_axes, valid_axes, rate_axes = grid.ravel()
    _training_panel(loss_axes, scalars, TRAIN_LOSS, 1.0, figures.color(0))
    _training_panel(accuracy_axes, scalars, TRAIN_ACCURACY, 100.0, figures.color(1))
    _validation_panel(valid_axes, scalars)
    _learning_rate_panel(rate_axes, scalars)
    for axes, name in zip(grid.ravel(), PANELS):
        axes.set_title(name, fontsize=11)
        axes.set_xlabel("step")
        axes.grid(True, color="0.9")
        axes.spines[["top", "right"]].set_visible(False)
    if title:
        figure.suptitle(title, fontsize=12)
    return figure


def training_curves_png(path, size=DEFAULT_SIZE, title=""):
    """PNG bytes of the training curves of the summary directory or event file(s) `path`."""
    return figures.figure_png(curves_figure(read_scalars(path), size, title))
