"""Trainers on injected episodes, shared by the training tests and their subprocess scripts.

`toy_learner` (the real CrossTransformerLearner, narrow), `make_episode` / `episode_stream`
(learnable random episodes), `make_trainer` (a Trainer on those episodes), `episode_gradients`
and `evaluate_episode` (one episode's gradients, accuracy and loss without an update), and
`ScaledCosineLearner` / `cosine_trainer` (a learner the trainer has never heard of).
"""

import dataclasses
import inspect

import gin
import numpy as np
import tensorflow as tf

from ctx_tf import distribute
from ctx_tf import learners
from ctx_tf.data.episode import Episode
from ctx_tf.keras import keras
from ctx_tf.learners import CrossTransformerLearner
from ctx_tf.models.backbones import FourLayerConvNet
from ctx_tf.training import loop
from ctx_tf.training import step as step_lib

IMAGE_SIZE = 28


def toy_learner(weight_decay=1e-3, depth=8, dim=16):
    """The real CrossTransformerLearner on a narrow four-layer convnet (fast on CPU)."""

    def embedding_fn(keep_spatial_dims=False):
        return FourLayerConvNet(weight_decay=weight_decay, keep_spatial_dims=keep_spatial_dims,
                                depth=depth)

    return CrossTransformerLearner(embedding_fn=embedding_fn, query_dim=dim, val_dim=dim,
                                   tformer_weight_decay=weight_decay)


def make_episode(rng, way=3, shot=2, query=2, size=IMAGE_SIZE):
    """A learnable random episode: each class is a fixed random pattern plus noise."""
    patterns = rng.uniform(-1, 1, size=(way, size, size, 3)).astype(np.float32)

    def images(n):
        labels = np.repeat(np.arange(way), n).astype(np.int32)
        noise = rng.normal(0, 0.3, size=(len(labels), size, size, 3)).astype(np.float32)
        return np.clip(patterns[labels] + noise, -1, 1), labels

    s_img, s_lab = images(shot)
    q_img, q_lab = images(query)
    return Episode(tf.constant(s_img), tf.constant(s_lab), tf.constant(s_lab.astype(np.int64)),
                   tf.constant(q_img), tf.constant(q_lab), tf.constant(q_lab.astype(np.int64)))


def episode_stream(seed, **kwargs):
    """Endless `make_episode`s drawn from `seed`."""
    rng = np.random.RandomState(seed % (2 ** 31))
    while True:
        yield make_episode(rng, **kwargs)


OPTION_NAMES = set(inspect.signature(loop.trainer_options).parameters)
RUN_NAMES = {field.name for field in dataclasses.fields(loop.RunInputs)}


def make_trainer(tmp_path, **kwargs):
    """A Trainer on injected episodes; `kwargs` are gin `Trainer` options (`num_updates`,
    ...), `RunInputs` fields or Trainer arguments (`strategy`, `train_episodes_fn`, ...)."""
    options = dict(
        num_updates=6, learning_rate=1e-3, decay_learning_rate=True, decay_every=2,
        decay_rate=0.5, normalized_gradient_descent=True, checkpoint_every=2,
        validate_every=3, log_every=2, num_eval_episodes=3, seed=7,
        train_learner_class=toy_learner)
    run = dict(checkpoint_dir=str(tmp_path / "ckpt"), summary_dir=str(tmp_path / "summaries"))
    others = dict(train_episodes_fn=episode_stream,
                  eval_episodes_fn=lambda split, seed: episode_stream(seed + 1000),
                  print_fn=lambda message: None)
    for name, value in kwargs.items():
        (options if name in OPTION_NAMES else run if name in RUN_NAMES else others)[name] = value
    return loop.Trainer(loop.RunInputs(**run), options=loop.trainer_options(**options), **others)


def episode_gradients(trainer, episode):
    """(loss, raw gradients of the trainable variables) of one episode, summed over
    replicas, without an update (batch-norm EMAs do move: a training-mode pass)."""
    trainer.updater.ensure_variables(episode)
    gradient_fn = step_lib.make_gradient_fn(trainer.strategy, trainer.learner,
                                            distribute.episode_signature(episode))
    out = gradient_fn(episode)
    return float(out[0]), [g.numpy() for g in out[1:]]


def evaluate_episode(trainer, episode):
    """(accuracy, loss) of the learner in inference mode on one episode."""
    trainer.updater.ensure_variables(episode)
    logits = np.asarray(trainer.predict_fn(episode)[0])
    labels = np.asarray(episode.query_labels)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    losses = trainer.learner.losses
    regularization = float(tf.add_n(losses)) if losses else 0.0
    loss = float(-log_softmax[np.arange(len(labels)), labels].mean()) + regularization
    return float((logits.argmax(axis=1) == labels).mean()), loss


# ----------------------------------------------------------------------------- a new learner

COSINE_SIZE = 8


class ScaledCosineLearner(keras.Model):
    """Neither a backbone nor a CrossTransformer: a linear map of the pixels, cosine
    similarity to class means, a learned temperature. Counts its own forward passes."""

    def __init__(self, dim=6):
        super().__init__()
        self.project = keras.layers.Dense(dim, use_bias=False, name="project")
        self.temperature = self.add_weight(name="temperature", shape=(),
                                           initializer=keras.initializers.Constant(3.0))
        self.calls = 0

    def episode_logits(self, episode, training, gather=learners.no_gather):
        self.calls += 1
        def embed(images):
            return tf.math.l2_normalize(
                self.project(tf.reshape(images, [-1, int(np.prod(images.shape[1:]))])), axis=-1)
        support = gather(embed(episode.support_images))
        labels = learners.gather_labels(episode.support_labels, gather)
        one_hot = tf.one_hot(labels, tf.reduce_max(labels) + 1)
        means = tf.math.l2_normalize(tf.matmul(one_hot, support, transpose_a=True), axis=-1)
        return self.temperature * tf.matmul(embed(episode.query_images), means,
                                            transpose_b=True)

    def call(self, episode, training=False):
        logits = self.episode_logits(episode, training=bool(training))
        labels = tf.cast(episode.query_labels, tf.int32)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        accuracy = tf.reduce_mean(tf.cast(
            tf.equal(tf.argmax(logits, 1, output_type=tf.int32), labels), tf.float32))
        return learners.LearnerOutput(logits, loss, accuracy)


def cosine_episodes(seed, size=COSINE_SIZE):
    """`episode_stream` of COSINE_SIZE-pixel episodes."""
    return episode_stream(seed, size=size)


def cosine_trainer(tmp_path, strategy=None):
    """A Trainer of ScaledCosineLearner, named by gin only (the configuration is cleared)."""
    gin.clear_config()
    gin.external_configurable(ScaledCosineLearner, "ScaledCosineLearner")
    gin.parse_config("Trainer.train_learner_class = @ScaledCosineLearner")
    options = loop.trainer_options(num_updates=4, learning_rate=1e-2, checkpoint_every=2,
                                   validate_every=2, log_every=2, num_eval_episodes=3, seed=3)
    return loop.Trainer(loop.RunInputs(checkpoint_dir=str(tmp_path / "ckpt")), options,
                        strategy=strategy, train_episodes_fn=cosine_episodes,
                        eval_episodes_fn=lambda split, seed: cosine_episodes(seed),
                        print_fn=lambda message: None)
