"""Tiny records and a tiny learner for evaluation tests."""

import gin
import numpy as np
import tensorflow as tf

from ctx_tf.data.writing.arrays import write_source_from_arrays
from ctx_tf.keras import keras


def write_tiny_source(records_root, name="tiny", num_classes=14, images_per_class=10, size=12,
                      splits=(4, 4, 6), seed=0):
    """A source whose classes are noisy flat colours (learnable from pixels in a few steps)."""
    rng = np.random.RandomState(seed)
    arrays = []
    for _ in range(num_classes):
        colour = rng.randint(0, 256, size=3)
        noise = rng.randint(-30, 31, size=(images_per_class, size, size, 3))
        arrays.append(np.clip(colour + noise, 0, 255).astype(np.uint8))
    write_source_from_arrays(str(records_root), name, arrays, splits=splits, seed=seed)
    return str(records_root)


@gin.configurable("TinyPrototypeLearner")
class TinyPrototypeLearner(keras.Model):
    """Prototypical logits on a 1x1 conv + batch norm + mean pool of the images.

    `call(episode, training)` -> `[num_query, way]` logits; batch norm uses moving averages
    when `training=False`, as every learner does at evaluation.
    """

    def __init__(self, filters=4, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(filters, 1, use_bias=False)
        self.bn = keras.layers.BatchNormalization()

    def embed(self, images, training):
        return tf.reduce_mean(self.bn(self.conv(images), training=training), axis=[1, 2])

    def call(self, episode, training=False):
        support = self.embed(episode.support_images, training)
        query = self.embed(episode.query_images, training)
        way = tf.reduce_max(episode.support_labels) + 1
        one_hot = tf.one_hot(episode.support_labels, way)
        prototypes = tf.matmul(one_hot, support, transpose_a=True) / tf.reduce_sum(
            one_hot, axis=0)[:, None]
        return -tf.reduce_sum((query[:, None, :] - prototypes[None]) ** 2, axis=-1)
