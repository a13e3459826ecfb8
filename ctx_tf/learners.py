"""Episodic learners: CrossTransformers (CTX) and the prototypical-network baseline.

    learner = CrossTransformerLearner(embedding_fn=resnet34)      # or built by gin
    out = learner(episode, training=True)    # LearnerOutput(logits, loss, accuracy)

`episode` is a `ctx_tf.data.episode.Episode`. The support pass of the backbone computes the
batch-norm moments (training) or reads the EMA (evaluation); the query pass reuses them
(docs/protocol.md §6.2). `loss` = mean softmax cross-entropy over the queries + every L2
term registered by the backbone and head (`learner.losses`). A learner is a Keras model: its
variables are listed by `trainable_variables`, saved by `tf.train.Checkpoint(learner=...)`, and
it can be called inside `tf.function`.

The forward pass is `episode_logits(episode, training, gather)`, the one the trainer, validation
and evaluation run. Under a multi-replica strategy every replica passes its own contiguous chunk
of the support and query sets, and `gather(t)` concatenates a per-replica support-side tensor
(keys, values, labels, features) over replicas in replica order (`ctx_tf.distribute.aggregate`);
on one device `gather` is the identity and `episode` is the whole episode. A new learner
subclasses `Learner`, implements `episode_logits` and trains, validates and evaluates as itself.

Gin (official names where the concept is the same):
  Learner.embedding_fn = @resnet34            # or @four_layer_convnet; a backbone factory
  Learner.backprop_through_moments = True
  CrossTransformerLearner.query_dim = 128
  CrossTransformerLearner.val_dim = 128
  CrossTransformerLearner.rematerialize = True
  CrossTransformerLearner.tformer_weight_decay = 0.0
  CrossTransformerLearner.embedding_fn / PrototypicalNetworkLearner.embedding_fn (override)
  CrossTransformer.query_chunk_size, CrossTransformer.memory_budget_bytes  (head memory knobs)
  resnet34.weight_decay / max_stride / deeplab_alignment, four_layer_convnet.weight_decay
  bn.use_ema, bn.ema_epsilon
"""

import collections

import gin
import tensorflow as tf

from ctx_tf import compute
from ctx_tf.data.episode import Episode
from ctx_tf.errors import UserError
from ctx_tf.keras import keras
from ctx_tf.models import backbones
from ctx_tf.models import prototypical
from ctx_tf.models.cross_transformer import CrossTransformer

# logits float32 [num_query, K]; loss and accuracy float32 scalars.
LearnerOutput = collections.namedtuple("LearnerOutput", ["logits", "loss", "accuracy"])
# What `query_attention` returns: the head's `ChosenAttention` and the (height, width) of the
# support and query feature maps its positions index (row-major).
QueryAttention = collections.namedtuple(
    "QueryAttention", ["attention", "support_grid", "query_grid"])


class LearnerError(UserError, ValueError):
    """No learner, or not a learner, where gin's `Trainer.*_learner_class` points."""


def no_gather(t):
    """The gather hook on one device: every support-side tensor is already complete."""
    return t


def gather_labels(labels, gather):
    """Support labels of all replicas (gathered as float32: every collective reduces it)."""
    return tf.cast(gather(tf.cast(labels, tf.float32)), tf.int32)


def _check_episode(episode):
    for field in ("support_images", "support_labels", "query_images", "query_labels"):
        if not hasattr(episode, field):
            raise TypeError(f"learner: expected a ctx_tf Episode, got {type(episode).__name__} without {field!r}")
    for field in ("support_images", "query_images"):
        shape = tf.TensorShape(getattr(episode, field).shape)
        if shape.rank != 4:
            raise ValueError(f"learner: episode.{field} must be [num, height, width, 3], got {shape}")


@gin.configurable("Learner", allowlist=["embedding_fn", "backprop_through_moments"])
class Learner(keras.Model):
    """Base: a backbone built from `embedding_fn` and the episodic support/query passes."""

    keep_spatial_dims = False

    def __init__(self, embedding_fn=backbones.resnet34, backprop_through_moments=True, **kwargs):
        super().__init__(**kwargs)
        if not callable(embedding_fn):
            raise TypeError(
                f"Learner.embedding_fn must be a backbone factory such as @resnet34 or "
                f"@four_layer_convnet, got {embedding_fn!r}")
        self.backbone = embedding_fn(keep_spatial_dims=self.keep_spatial_dims)
        if not isinstance(self.backbone, backbones.Backbone):
            raise TypeError(
                f"Learner.embedding_fn returned {type(self.backbone).__name__}, expected a "
                "ctx_tf.models.backbones.Backbone layer")
        self.backprop_through_moments = bool(backprop_through_moments)

    def embed_episode(self, episode, training):
        """(support features, query features); queries normalized with support moments."""
        support, moments = self.backbone(episode.support_images, training=training)
        if not self.backprop_through_moments:
            moments = tf.nest.map_structure(tf.stop_gradient, moments)
        query, _ = self.backbone(episode.query_images, training=training, moments=moments)
        return support, query

    def episode_logits(self, episode, training, gather=no_gather):
        """Logits `[num_query, way]` of `episode`'s queries (see the module docstring)."""
        raise NotImplementedError

    def call(self, episode, training=False):
        _check_episode(episode)
        logits = self.episode_logits(episode, training=bool(training), gather=no_gather)
        query_labels = tf.cast(episode.query_labels, tf.int32)
        cross_entropy = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=query_labels, logits=logits))
        regularization = tf.add_n(self.losses) if self.losses else tf.constant(0.0)
        accuracy = tf.reduce_mean(tf.cast(
            tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), query_labels), tf.float32))
        return LearnerOutput(logits=logits, loss=cross_entropy + regularization, accuracy=accuracy)


@gin.configurable(
    "CrossTransformerLearner",
    allowlist=["embedding_fn", "query_dim", "val_dim", "rematerialize", "tformer_weight_decay"],
)
class CrossTransformerLearner(Learner):
    """CTX: a spatial backbone followed by the CrossTransformer head."""

    keep_spatial_dims = True

    def __init__(self, embedding_fn=None, query_dim=128, val_dim=128, rematerialize=True,
                 tformer_weight_decay=0.0, **kwargs):
        # Left out when unset so that a `Learner.embedding_fn` binding applies.
        if embedding_fn is not None:
            kwargs["embedding_fn"] = embedding_fn
        super().__init__(**kwargs)
        self.head = CrossTransformer(
            query_dim=query_dim, val_dim=val_dim, tformer_weight_decay=tformer_weight_decay,
            rematerialize=rematerialize, name="cross_transformer")

    def episode_logits(self, episode, training, gather=no_gather):
        support, query = self.embed_episode(episode, training)
        support_keys, support_values = self.head.project(support)
        query_keys, query_values = self.head.project(query)
        return self.head.logits_from_projections(
            gather(support_keys), gather(support_values),
            gather_labels(episode.support_labels, gather), query_keys, query_values)

    def query_attention(self, episode, query_indices):
        """`QueryAttention` of the chosen queries of `episode` in inference mode (the
        attention-figure capability: learners without spatial attention lack this method)."""
        support, query = self.embed_episode(episode, training=False)
        attention = self.head.attention_weights(support, episode.support_labels, query,
                                                query_indices)
        return QueryAttention(attention, tuple(support.shape[1:3]), tuple(query.shape[1:3]))

    def official_variable_names(self):
        names = self.backbone.official_variable_names()
        names.update(self.head.official_variable_names())
        return names


@gin.configurable("PrototypicalNetworkLearner", allowlist=["embedding_fn"])
class PrototypicalNetworkLearner(Learner):
    """ProtoNet: flat embeddings (ResNet: global average pool; convnet: flatten, as official),
    class-mean prototypes, logits = -squared Euclidean distance."""

    keep_spatial_dims = False

    def __init__(self, embedding_fn=None, **kwargs):
        if embedding_fn is not None:
            kwargs["embedding_fn"] = embedding_fn
        super().__init__(**kwargs)

    def episode_logits(self, episode, training, gather=no_gather):
        support, query = self.embed_episode(episode, training)
        prototypes = prototypical.class_prototypes(
            gather(_flat(support)), gather_labels(episode.support_labels, gather))
        return prototypical.prototype_logits(_flat(query), prototypes)

    def official_variable_names(self):
        return self.backbone.official_variable_names()


def _flat(features):
    return tf.reshape(features, [tf.shape(features)[0], -1])


# ----------------------------------------------------------------------------- building


def _bound_learner_class(which):
    """The class gin binds to `Trainer.<which>_learner_class` (None when unbound)."""
    try:
        bindings = gin.get_bindings("Trainer")
    except (ValueError, KeyError):
        bindings = {}
    return bindings.get(f"{which}_learner_class")


def build_learner(training=True, learner_class=None, image_size=None):
    """Builds the learner configured by gin.

    The class is `learner_class` if given, else gin's `Trainer.train_learner_class`
    (`training=True`) or `Trainer.eval_learner_class` (falling back to the train class); its
    constructor arguments come from gin. It is built under gin's `compute.policy` (layers
    keep the policy they were constructed under; variables are float32 under every policy).
    With `image_size` its variables are created at once (see `build_learner_variables`), so it
    can be restored and checked right away.
    """
    if learner_class is None:
        learner_class = _bound_learner_class("train" if training else "eval")
        if learner_class is None and not training:
            learner_class = _bound_learner_class("train")
    if learner_class is None:
        raise LearnerError(
            "no learner configured: bind Trainer.train_learner_class (and "
            "Trainer.eval_learner_class), e.g. `Trainer.train_learner_class = "
            "@CrossTransformerLearner` in a gin file")
    if not callable(learner_class):
        raise LearnerError(
            f"Trainer.{'train' if training else 'eval'}_learner_class must be a learner class "
            f"(e.g. @CrossTransformerLearner), got {learner_class!r}")
    with compute.policy_scope():
        learner = learner_class()
    if image_size is not None:
        build_learner_variables(learner, image_size)
    return learner


def build_learner_variables(learner, image_size):
    """Creates the learner's variables by an inference-mode pass on a blank 1-way 1-shot
    episode (no batch-norm statistics change). A learner may create some variables in its
    constructor and the rest at its first call, so `built`, not `variables`, decides."""
    if not learner.built:
        size = int(image_size)
        images = tf.zeros([1, size, size, 3], tf.float32)
        labels, class_ids = tf.zeros([1], tf.int32), tf.zeros([1], tf.int64)
        learner(Episode(images, labels, class_ids, images, labels, class_ids), training=False)
    return learner
