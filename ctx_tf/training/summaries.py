"""What a training run reports: TensorBoard summaries (through `tf.summary`) and its log lines."""

import time

import tensorflow as tf

from ctx_tf.progress import eta


def scalar(name, value, step=None):
    """A float32 scalar summary (TensorBoard's Scalars tab)."""
    return tf.summary.scalar(name, float(value), step=step)


def png_image(name, png, step=None):
    """An image summary from PNG bytes (TensorBoard's Images tab), as RGB."""
    image = tf.io.decode_png(png, channels=3)
    return tf.summary.image(name, image[None], step=step, max_outputs=1)


def log_update(writer, step, num_updates, out, stats):
    """Writes an update's scalars; returns its log line."""
    with writer.as_default(step=step):
        for key in ("loss", "accuracy", "learning_rate", "grad_norm"):
            scalar(f"train/{key}", out[key])
        for key in ("way", "mean_shot", "num_support", "num_query"):
            scalar(f"episode/{key}", stats[key])
    return (f"[step {step}/{num_updates}] loss {out['loss']:.4f} acc {out['accuracy']:.3f} "
            f"lr {out['learning_rate']:.3g} |g| {out['grad_norm']:.3g} way {stats['way']} "
            f"shots {stats['mean_shot']:.1f}")


class Summaries:
    """The summaries and log lines of one run, from `start_step` to `num_updates`.

    Update lines carry the updates/s since the previous line (training time only: the loop
    calls `resume` after a validation or a save) and the ETA at the run's average rate so far
    (validations included). Only the chief of a multi-worker run writes summaries.
    """

    def __init__(self, directory, num_updates, chief=True, print_fn=print):
        self.writer = (tf.summary.create_file_writer(directory) if directory and chief
                       else tf.summary.create_noop_writer())
        self.num_updates = num_updates
        self.print = print_fn
        self.start(0)

    def start(self, step):
        self.start_step = self._window_step = step
        self.start_time = self._window_time = time.time()

    def update(self, step, out, stats):
        """Writes the scalars of update `step` and prints its line."""
        now = time.time()
        rate = (step - self._window_step) / max(now - self._window_time, 1e-9)
        overall = (step - self.start_step) / max(now - self.start_time, 1e-9)
        self.print(log_update(self.writer, step, self.num_updates, out, stats)
                   + f" | {rate:.2f} updates/s, ETA {eta(self.num_updates - step, overall)}")
        self._window_time, self._window_step = now, step

    def resume(self):
        """Training resumes after a validation or a save: updates/s counts from now."""
        self._window_time = time.time()

    def validation(self, step, mean, ci95, figure=None):
        """The validation scalars of `step` and the attention figure (PNG bytes) if any."""
        with self.writer.as_default(step=step):
            scalar("valid_acc/mean", mean)
            scalar("valid_acc/ci95", ci95)
            if figure is not None:
                png_image("valid/attention", figure)

    def flush(self):
        self.writer.flush()
