"""A tiny learner for the evaluation tests (their tiny sources: tests/data/helpers.py)."""

import gin
import tensorflow as tf

from ctx_tf.keras import keras


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
