"""The single import site of Keras in ctx_tf.

Keras 2 through the ``tf-keras`` package: the same code runs on TensorFlow 2.15 and on the
newest TensorFlow (whose bundled ``tf.keras`` is Keras 3). Everything in ctx_tf imports Keras
as ``from ctx_tf.keras import keras``.
"""

import tf_keras as keras  # noqa: F401

__all__ = ["keras"]
