"""Strategies, the episode split/gather helpers and the replicated forward pass (docs/protocol.md
§7.2).

An episode is split over replicas in contiguous chunks of `ceil(N / num_replicas)` images
(support and query separately; later chunks may be shorter or empty). Each replica embeds its
chunks; `aggregate()` concatenates per-replica tensors back in replica order, so every replica
attends over the whole support set while computing logits only for its own queries.

All helpers are the identity (or trivial) outside a multi-replica replica context, so the same
step function runs under the default strategy on one device.

`replica_forward` is the one forward pass of training (`ctx_tf.training.step`) and evaluation
(`make_predict_fn`, the predict function of validation, the final test and
`python -m ctx_tf.evaluate`); it lives here, below both, so that evaluation needs nothing of
training. The predict function has a shape-free signature, so a run traces it once however
many episode shapes it meets (XLA, `compute.jit_compile`, still compiles once per shape).
"""

import json
import os

import tensorflow as tf

from ctx_tf import compute
from ctx_tf.errors import UserError


class DistributeError(UserError, RuntimeError):
    """A strategy cannot be created as configured."""


def make_strategy(distribute=False, tpu=None, devices=None, cluster=True):
    """The tf.distribute strategy for a run.

    * `TF_CONFIG` set in the environment (with more than one task) and `cluster`:
      MultiWorkerMirroredStrategy (each worker mirrors over its own visible GPUs, or its CPU);
    * `tpu` (a TPU name or address, '' for the local TPU): TPUStrategy;
    * `distribute=True`: MirroredStrategy over `devices`, else over all visible GPUs (also a
      single GPU, as officially), else over the logical CPU devices when the process split
      its CPU into several (`tf.config.set_logical_device_configuration`, as the tests do);
      otherwise the default strategy on the CPU;
    * otherwise the default strategy.
    """
    tf_config = os.environ.get("TF_CONFIG") if cluster else None
    if tf_config:
        try:
            cluster_spec = json.loads(tf_config).get("cluster", {})
        except ValueError as e:
            raise DistributeError(f"TF_CONFIG is not valid JSON: {e}") from e
        if sum(len(v) for v in cluster_spec.values()) > 1:
            return tf.distribute.MultiWorkerMirroredStrategy()
    if tpu is not None:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if distribute:
        if devices:
            return tf.distribute.MirroredStrategy(devices=list(devices))
        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            return tf.distribute.MirroredStrategy(devices=[d.name for d in gpus])
        cpus = tf.config.list_logical_devices("CPU")
        if len(cpus) > 1:
            return tf.distribute.MirroredStrategy(devices=[d.name for d in cpus])
    return tf.distribute.get_strategy()


def is_chief(strategy):
    """False only for the non-chief workers of a multi-worker run (they write no files)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    return (task_type == "worker" and task_id == 0
            and "chief" not in resolver.cluster_spec().as_dict())


def replica_info():
    """(replica id, number of replicas) in the current replica context; (0, 1) outside."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None:
        return 0, 1
    return ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync


def chunk_bounds(total, replica_id, num_replicas):
    """[start, end) of a replica's contiguous chunk of `ceil(total / num_replicas)` items."""
    total = tf.convert_to_tensor(total, tf.int32)
    chunk = (total + num_replicas - 1) // num_replicas
    start = tf.minimum(tf.cast(replica_id, tf.int32) * chunk, total)
    end = tf.minimum(start + chunk, total)
    return start, end


def local_chunk(x, replica_id=None, num_replicas=None):
    """This replica's contiguous chunk of `x` along axis 0 (all of `x` with one replica)."""
    if replica_id is None or num_replicas is None:
        replica_id, num_replicas = replica_info()
    if num_replicas == 1:
        return x
    start, end = chunk_bounds(tf.shape(x)[0], replica_id, num_replicas)
    return x[start:end]


def all_reduce_sum(values):
    """Sum over replicas (identity with one replica); nested structures allowed."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return values
    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, values)


def aggregate(t):
    """Concatenates a per-replica tensor (variable first dimension) over replicas, in order.

    All-reduces the per-replica sizes, zero-pads the local tensor to the total size at its
    offset, and all-reduces the sum. Differentiable: the gradient of the all-reduced sum is the
    all-reduced sum of the gradients, so each replica receives the gradient of every replica's
    use of its rows. Outside a multi-replica replica context it is the identity.
    """
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return t
    num_replicas = ctx.num_replicas_in_sync
    replica_id = tf.cast(ctx.replica_id_in_sync_group, tf.int32)
    size = tf.shape(t)[0]
    # float32: every collective implementation reduces it (int32 is not supported everywhere).
    one_hot_size = tf.one_hot(replica_id, num_replicas) * tf.cast(size, tf.float32)
    sizes = tf.cast(tf.round(ctx.all_reduce(tf.distribute.ReduceOp.SUM, one_hot_size)), tf.int32)
    offset = tf.reduce_sum(sizes[:replica_id])
    total = tf.reduce_sum(sizes)
    paddings = tf.concat(
        [[[offset, total - offset - size]], tf.zeros([t.shape.rank - 1, 2], tf.int32)], axis=0)
    padded = tf.pad(t, paddings)
    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, padded)


def first_replica_value(strategy, value):
    """The value of the first local replica (for results every replica holds identically)."""
    return tf.nest.map_structure(
        lambda v: strategy.experimental_local_results(v)[0], value)


# ------------------------------------------------------------ the replicated forward pass

def local_episode(episode):
    """This replica's chunk of the support and of the query set (all of it on one device)."""
    replica_id, num_replicas = replica_info()
    return type(episode)(*[local_chunk(t, replica_id, num_replicas)
                           for t in episode])


def replica_forward(learner, episode, training):
    """Logits and loss terms of this replica's share of `episode` (a dict of tensors):

      logits: of the local queries; loss: local CE sum / total queries + regularization /
      replicas; ce_sum, correct: local sums; num_query: total queries; regularization.
    """
    _, num_replicas = replica_info()
    local = local_episode(episode)
    # The loss and its statistics stay float32 whatever the learner computes in.
    logits = tf.cast(learner.episode_logits(local, training=training,
                                            gather=aggregate), tf.float32)
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


def use_jit(learner, jit_compile=None):
    """Whether to compile with XLA: `jit_compile`, else gin's `compute.jit_compile`, checked
    against the learner (`compute.check_jit`)."""
    jit_compile = compute.options().jit_compile if jit_compile is None else bool(jit_compile)
    return compute.check_jit(learner, jit_compile)


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
        return aggregate(out["logits"])

    def predict(episode):
        logits = first_replica_value(
            strategy, strategy.run(replica_fn, args=(episode,)))
        return (logits, tf.reduce_mean(episode.support_images, axis=[1, 2, 3]),
                tf.reduce_mean(episode.query_images, axis=[1, 2, 3]))

    compiled = []
    jit = use_jit(learner, jit_compile)

    def predict_fn(episode):
        if not compiled:
            compiled.append(tf.function(predict, input_signature=[episode_signature(episode)],
                                        autograph=False, jit_compile=jit))
        return compiled[0](episode)

    return predict_fn
