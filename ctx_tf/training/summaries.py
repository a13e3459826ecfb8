"""TensorBoard summaries of a training run (through `tf.summary`) and an update's log line."""

import tensorflow as tf


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
