"""TensorBoard scalars and the log line of a training update."""

import tensorflow as tf
from tensorflow.core.framework import summary_pb2


def scalar(name, value, step=None):
    """A TensorBoard scalar summary that needs only TensorFlow (tf.summary.scalar needs the
    tensorboard package): the 'scalars' plugin reads a float32 scalar tensor."""
    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    return tf.summary.write(name, tf.constant(float(value), tf.float32), step=step,
                            metadata=metadata.SerializeToString())


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
