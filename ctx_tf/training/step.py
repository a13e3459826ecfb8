"""The replicated update of one episode (meta-dataset protocol §5.5, §5.6).

Every replica receives the whole episode, keeps its contiguous chunks of the support and query
sets and calls the learner's own forward pass, `learner.episode_logits(chunk, training,
gather=ctx_tf.distribute.aggregate)`: the learner gathers its support-side tensors from all
replicas, so every replica attends over the whole support set while computing logits for its
own queries. The losses of the replicas sum to the episode's loss (mean cross-entropy + L2),
so the summed gradients are the episode's gradients. On one device all of this is the
identity. The step knows no model class.
"""

import numpy as np
import tensorflow as tf

from ctx_tf import distribute as distribute_lib


def global_norm_squared(gradients):
    return tf.add_n([tf.reduce_sum(tf.square(g)) for g in gradients])


def normalize_gradients(gradients):
    """Divides every gradient by `sqrt(max(sum of squares of all gradients, 1e-5))` (§5.6).

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
    logits = learner.episode_logits(local, training=training, gather=distribute_lib.aggregate)
    query_labels = tf.cast(local.query_labels, tf.int32)
    ce_sum = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=query_labels, logits=logits))
    correct = tf.reduce_sum(tf.cast(
        tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), query_labels), tf.float32))
    num_query = tf.shape(episode.query_labels)[0]
    regularization = tf.add_n(learner.losses) if learner.losses else tf.constant(0.0)
    loss = ce_sum / tf.cast(num_query, tf.float32) + regularization / float(num_replicas)
    return dict(logits=logits, loss=loss, ce_sum=ce_sum, correct=correct, num_query=num_query,
                regularization=regularization)


def episode_signature(episode):
    """A TensorSpec per field with a free first dimension: one trace serves every shape."""
    def spec(t):
        t = tf.convert_to_tensor(t)
        return tf.TensorSpec([None] + t.shape.as_list()[1:], t.dtype)
    return type(episode)(*[spec(t) for t in episode])


def _gradients(learner, episode):
    variables = learner.trainable_variables
    with tf.GradientTape() as tape:
        out = replica_forward(learner, episode, training=True)
    gradients = tape.gradient(out["loss"], variables)
    gradients = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                 for g, v in zip(gradients, variables)]
    # Cross-replica sum first: the norm is that of the episode gradient (§5.5).
    return out, distribute_lib.all_reduce_sum(gradients)


def make_train_step(strategy, learner, optimizer, step, normalized, signature):
    """A compiled `episode -> {loss, accuracy, grad_norm, regularization}` that updates."""

    def replica_fn(episode):
        out, gradients = _gradients(learner, episode)
        norm = tf.sqrt(global_norm_squared(gradients))
        if normalized:
            gradients, _ = normalize_gradients(gradients)
        optimizer.apply_gradients(zip(gradients, learner.trainable_variables),
                                  skip_gradients_aggregation=True)
        loss, correct = distribute_lib.all_reduce_sum([out["loss"], out["correct"]])
        return dict(loss=loss, accuracy=correct / tf.cast(out["num_query"], tf.float32),
                    grad_norm=norm, regularization=out["regularization"])

    @tf.function(input_signature=[signature], autograph=False)
    def train_step(episode):
        results = strategy.run(replica_fn, args=(episode,))
        step.assign_add(1)
        return distribute_lib.first_replica_value(strategy, results)

    return train_step


def make_gradient_fn(strategy, learner, signature):
    """A compiled `episode -> [loss] + raw gradients` (summed over replicas), no update."""

    def replica_fn(episode):
        out, gradients = _gradients(learner, episode)
        return [distribute_lib.all_reduce_sum(out["loss"])] + gradients

    @tf.function(input_signature=[signature], autograph=False)
    def gradient_fn(episode):
        return distribute_lib.first_replica_value(
            strategy, strategy.run(replica_fn, args=(episode,)))

    return gradient_fn


def make_predict_fn(strategy, learner):
    """`episode -> (logits, support image means, query image means)` in inference mode, run
    on every replica (`ctx_tf.evaluation.protocol` takes it as its predict_fn); compiled at
    the first episode with a shape-free signature."""

    def replica_fn(episode):
        out = replica_forward(learner, episode, training=False)
        return distribute_lib.aggregate(out["logits"])

    def predict(episode):
        logits = distribute_lib.first_replica_value(
            strategy, strategy.run(replica_fn, args=(episode,)))
        return (logits, tf.reduce_mean(episode.support_images, axis=[1, 2, 3]),
                tf.reduce_mean(episode.query_images, axis=[1, 2, 3]))

    compiled = []

    def predict_fn(episode):
        if not compiled:
            compiled.append(tf.function(predict, input_signature=[episode_signature(episode)],
                                        autograph=False))
        return compiled[0](episode)

    return predict_fn
