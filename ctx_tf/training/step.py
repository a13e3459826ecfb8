"""The replicated update of one episode (docs/protocol.md §7.2, §7.3).

Every replica receives the whole episode, keeps its contiguous chunks of the support and query
sets and calls the learner's own forward pass, `learner.episode_logits(chunk, training,
gather=ctx_tf.distribute.aggregate)`: the learner gathers its support-side tensors from all
replicas, so every replica attends over the whole support set while computing logits for its
own queries. The losses of the replicas sum to the episode's loss (mean cross-entropy + L2),
so the summed gradients are the episode's gradients. On one device all of this is the
identity. The step knows no model class.

Under `compute.policy = "mixed_float16"` the optimizer is a `LossScaleOptimizer`: the loss is
scaled before the gradients and the gradients unscaled before the cross-replica sum and the
normalization; an update whose gradients are not finite is skipped (the episode still counts).
`compute.jit_compile` compiles the step, the gradient function and the predict function with
XLA. The predict function has a shape-free signature, so a run traces it once however many
episode shapes it meets (XLA still compiles once per shape).
"""

import numpy as np
import tensorflow as tf

from ctx_tf import compute
from ctx_tf import distribute as distribute_lib
from ctx_tf.keras import keras


def global_norm_squared(gradients):
    return tf.add_n([tf.reduce_sum(tf.square(g)) for g in gradients])


def normalize_gradients(gradients):
    """Divides every gradient by `sqrt(max(sum of squares of all gradients, 1e-5))` (docs/protocol.md §7.3).

    Returns (normalized gradients, the norm used)."""
    norm = tf.sqrt(tf.maximum(global_norm_squared(gradients), 1e-5))
    return [g / norm for g in gradients], norm


def episode_stats(episode):
    """{'way', 'mean_shot', 'num_support', 'num_query'} of an (eager) episode."""
    labels = np.asarray(episode.support_labels)
    way = int(labels.max()) + 1 if labels.size else 0
    return dict(way=way, mean_shot=labels.size / max(way, 1), num_support=int(labels.size),
                num_query=int(np.asarray(episode.query_labels).size))


def local_episode(episode):
    """This replica's chunk of the support and of the query set (all of it on one device)."""
    replica_id, num_replicas = distribute_lib.replica_info()
    return type(episode)(*[distribute_lib.local_chunk(t, replica_id, num_replicas)
                           for t in episode])


def replica_forward(learner, episode, training):
    """Logits and loss terms of this replica's share of `episode` (a dict of tensors):

      logits: of the local queries; loss: local CE sum / total queries + regularization /
      replicas; ce_sum, correct: local sums; num_query: total queries; regularization.
    """
    _, num_replicas = distribute_lib.replica_info()
    local = local_episode(episode)
    # The loss and its statistics stay float32 whatever the learner computes in.
    logits = tf.cast(learner.episode_logits(local, training=training,
                                            gather=distribute_lib.aggregate), tf.float32)
    query_labels = tf.cast(local.query_labels, tf.int32)
    ce_sum = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=query_labels, logits=logits))
    correct = tf.reduce_sum(tf.cast(
        tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), query_labels), tf.float32))
    num_query = tf.shape(episode.query_labels)[0]
    regularization = (tf.add_n([tf.cast(x, tf.float32) for x in learner.losses])
                      if learner.losses else tf.constant(0.0))
    loss = ce_sum / tf.cast(num_query, tf.float32) + regularization / float(num_replicas)
    return dict(logits=logits, loss=loss, ce_sum=ce_sum, correct=correct, num_query=num_query,
                regularization=regularization)


def episode_signature(episode):
    """A TensorSpec per field with a free first dimension: one trace serves every shape."""
    def spec(t):
        t = tf.convert_to_tensor(t)
        return tf.TensorSpec([None] + t.shape.as_list()[1:], t.dtype)
    return type(episode)(*[spec(t) for t in episode])


def _is_loss_scaling(optimizer):
    return isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)


def _gradients(learner, episode, optimizer=None):
    variables = learner.trainable_variables
    scaling = _is_loss_scaling(optimizer)
    with tf.GradientTape() as tape:
        out = replica_forward(learner, episode, training=True)
        objective = optimizer.get_scaled_loss(out["loss"]) if scaling else out["loss"]
    gradients = tape.gradient(objective, variables)
    gradients = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                 for g, v in zip(gradients, variables)]
    if scaling:
        gradients = optimizer.get_unscaled_gradients(gradients)
    # Cross-replica sum first: the norm is that of the episode gradient (docs/protocol.md §7.2).
    return out, distribute_lib.all_reduce_sum(gradients)


def _jit(learner, jit_compile):
    jit_compile = compute.options().jit_compile if jit_compile is None else bool(jit_compile)
    return compute.check_jit(learner, jit_compile)


def make_train_step(strategy, learner, optimizer, step, normalized, signature,
                    jit_compile=None):
    """A compiled `episode -> {loss, accuracy, grad_norm, regularization}` that updates; with
    a `LossScaleOptimizer` also `skipped` (1.0: gradients not finite, no update) and
    `loss_scale` (after this step). `jit_compile` None: gin's `compute.jit_compile`."""
    scaling = _is_loss_scaling(optimizer)
    jit = _jit(learner, jit_compile)

    def replica_fn(episode):
        out, gradients = _gradients(learner, episode, optimizer)
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in gradients])
        norm = tf.sqrt(global_norm_squared(gradients))
        if normalized:
            gradients, _ = normalize_gradients(gradients)
        optimizer.apply_gradients(zip(gradients, learner.trainable_variables),
                                  skip_gradients_aggregation=True)
        loss, correct = distribute_lib.all_reduce_sum([out["loss"], out["correct"]])
        results = dict(loss=loss, accuracy=correct / tf.cast(out["num_query"], tf.float32),
                       grad_norm=norm, regularization=out["regularization"])
        if scaling:
            results["skipped"] = 1.0 - tf.cast(finite, tf.float32)
            results["loss_scale"] = tf.identity(optimizer.loss_scale)
        return results

    @tf.function(input_signature=[signature], autograph=False, jit_compile=jit)
    def train_step(episode):
        results = strategy.run(replica_fn, args=(episode,))
        step.assign_add(1)
        return distribute_lib.first_replica_value(strategy, results)

    return train_step


def make_gradient_fn(strategy, learner, signature, jit_compile=None):
    """A compiled `episode -> [loss] + raw gradients` (summed over replicas), no update."""
    jit = _jit(learner, jit_compile)

    def replica_fn(episode):
        out, gradients = _gradients(learner, episode)
        return [distribute_lib.all_reduce_sum(out["loss"])] + gradients

    @tf.function(input_signature=[signature], autograph=False, jit_compile=jit)
    def gradient_fn(episode):
        return distribute_lib.first_replica_value(
            strategy, strategy.run(replica_fn, args=(episode,)))

    return gradient_fn


def learner_logits(learner, episode):
    """Query logits of a model without `episode_logits`, called on the whole episode in
    evaluation mode: its output, or the `logits` entry or attribute of it."""
    outputs = learner(episode, training=False)
    if isinstance(outputs, dict):
        return outputs["logits"]
    if hasattr(outputs, "logits"):
        return outputs.logits
    return outputs


def make_predict_fn(strategy, learner, jit_compile=None):
    """`episode -> (logits, support image means, query image means)` in inference mode, run
    on every replica; the one predict function of validation, the final test and
    `python -m ctx_tf.evaluate` (`ctx_tf.evaluation.protocol` takes it as its predict_fn).

    Compiled at the first episode with a signature whose first dimensions are free, so it is
    traced once for every episode shape of a run. A model without `episode_logits` (a plain
    Keras model taking the episode) is called on the whole episode, on one replica only.
    `jit_compile` None: gin's `compute.jit_compile`."""
    if not hasattr(learner, "episode_logits") and strategy.num_replicas_in_sync > 1:
        raise TypeError(f"{type(learner).__name__} has no episode_logits: it cannot be split "
                        f"over {strategy.num_replicas_in_sync} replicas")

    def replica_fn(episode):
        if not hasattr(learner, "episode_logits"):
            return tf.cast(learner_logits(learner, episode), tf.float32)
        out = replica_forward(learner, episode, training=False)
        return distribute_lib.aggregate(out["logits"])

    def predict(episode):
        logits = distribute_lib.first_replica_value(
            strategy, strategy.run(replica_fn, args=(episode,)))
        return (logits, tf.reduce_mean(episode.support_images, axis=[1, 2, 3]),
                tf.reduce_mean(episode.query_images, axis=[1, 2, 3]))

    compiled = []
    jit = _jit(learner, jit_compile)

    def predict_fn(episode):
        if not compiled:
            compiled.append(tf.function(predict, input_signature=[episode_signature(episode)],
                                        autograph=False, jit_compile=jit))
        return compiled[0](episode)

    return predict_fn
