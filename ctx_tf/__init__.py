"""ctx_tf: CrossTransformers and SimCLR episodes for Meta-Dataset, in TensorFlow 2 / Keras 2.

The public names below are imported lazily, so `import ctx_tf` stays cheap (TensorFlow is only
loaded by the modules that need it) and changes nothing in the process.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Split": "ctx_tf.data.dataset_spec",
    "load_dataset_spec": "ctx_tf.data.dataset_spec",
    "EpisodeDescriptionConfig": "ctx_tf.data.sampling",
    "EpisodeDescriptionSampler": "ctx_tf.data.sampling",
    "Episode": "ctx_tf.data.episode",
    "DataConfig": "ctx_tf.data.config",
    "ImageDecoder": "ctx_tf.data.reading.decoder",
    "make_one_source_episode_pipeline": "ctx_tf.data.pipeline",
    "make_multisource_episode_pipeline": "ctx_tf.data.pipeline",
    "make_one_source_batch_pipeline": "ctx_tf.data.pipeline",
    "make_multisource_batch_pipeline": "ctx_tf.data.pipeline",
    "write_source_from_arrays": "ctx_tf.data.writing.arrays",
    "write_source_from_folder": "ctx_tf.data.writing.folder",
    "check_source": "ctx_tf.data.checking.consistency",
    "to_simclr_episode": "ctx_tf.data.simclr",
    "CrossTransformer": "ctx_tf.models.cross_transformer",
    "CrossTransformerLearner": "ctx_tf.learners",
    "PrototypicalNetworkLearner": "ctx_tf.learners",
    "Trainer": "ctx_tf.training.loop",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ctx_tf' has no attribute {name!r}")


def __dir__():
    return __all__
