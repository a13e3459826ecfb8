"""ctx_tf: CrossTransformers and SimCLR episodes for Meta-Dataset, in TensorFlow 2 / Keras 2."""

__version__ = "0.1.0"
