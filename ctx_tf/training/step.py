"""The replicated update of one episode (docs/protocol.md §7.2, §7.3).

The forward pass of every replica is `ctx_tf.distribute.replica_forward` (the one forward pass
of training and evaluation): every replica keeps its contiguous chunks of the support and
query sets and calls the learner's own `episode_logits`, gathering the support side from all
replicas. The losses of the replicas sum to the episode's loss (mean cross-entropy + L2), so
the summed gradients are the episode's gradients. On one device all of this is the identity.
The step knows no model class; `Updater` holds the learner, its optimizer and step counter and
the compiled update of a run.

Under `compute.policy = "mixed_float16"` the optimizer is a `LossScaleOptimizer`: the loss is
scaled before the gradients and the gradients unscaled before the cross-replica sum and the
normalization; an update whose gradients are not finite is skipped (the episode still counts).
`compute.jit_compile` compiles the step and the gradient function with XLA.
"""

import numpy as np
import tensorflow as tf

from ctx_tf import compute
from ctx_tf import distribute as distribute_lib
from ctx_tf import learners
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


def _is_loss_scaling(optimizer):
    return isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)


def _gradients(learner, episode, optimizer=None):
    variables = learner.trainable_variables
    scaling = _is_loss_scaling(optimizer)
    with tf.GradientTape() as tape:
        out = distribute_lib.replica_forward(learner, episode, training=True)
        objective = optimizer.get_scaled_loss(out["loss"]) if scaling else out["loss"]
    gradients = tape.gradient(objective, variables)
    gradients = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                 for g, v in zip(gradients, variables)]
    if scaling:
        gradients = optimizer.get_unscaled_gradients(gradients)
    # Cross-replica sum first: the norm is that of the episode gradient (docs/protocol.md §7.2).
    return out, distribute_lib.all_reduce_sum(gradients)


def make_train_step(strategy, learner, optimizer, step, normalized, signature,
                    jit_compile=None):
    """A compiled `episode -> {loss, accuracy, grad_norm, regularization}` that updates; with
    a `LossScaleOptimizer` also `skipped` (1.0: gradients not finite, no update) and
    `loss_scale` (after this step). `jit_compile` None: gin's `compute.jit_compile`."""
    scaling = _is_loss_scaling(optimizer)
    jit = distribute_lib.use_jit(learner, jit_compile)

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
    jit = distribute_lib.use_jit(learner, jit_compile)

    def replica_fn(episode):
        out, gradients = _gradients(learner, episode)
        return [distribute_lib.all_reduce_sum(out["loss"])] + gradients

    @tf.function(input_signature=[signature], autograph=False, jit_compile=jit)
    def gradient_fn(episode):
        return distribute_lib.first_replica_value(
            strategy, strategy.run(replica_fn, args=(episode,)))

    return gradient_fn


class Updater:
    """The learner of a run, its optimizer and step counter, and the compiled replicated
    update: what the loop calls once per training episode.

    Args:
      strategy: the run's tf.distribute strategy.
      learner_class: builds the learner (`ctx_tf.learners.build_learner`).
      schedule: the `LearningRateSchedule`.
      normalized: divide the episode gradient by its (clamped) global norm before Adam.
      image_size: builds the variables now (None: at the first episode).
      seed: the initialization seed (`Trainer.seed`), so a run is reproducible end to end.
    """

    def __init__(self, strategy, learner_class, schedule, normalized, image_size=None, seed=0):
        self.strategy = strategy
        self.schedule = schedule
        self.normalized = bool(normalized)
        keras.utils.set_random_seed(seed % (2 ** 31))
        with strategy.scope():
            self.learner = learners.build_learner(learner_class=learner_class)
            if image_size is not None:
                learners.build_learner_variables(self.learner, image_size)
            # Keras Adam with epsilon 1e-7, as the official distributed (CTX) path; loss
            # scaling when the learner computes in float16 (gin `compute.policy`).
            self.optimizer = compute.training_optimizer(keras.optimizers.Adam(
                learning_rate=schedule.for_optimizer(), epsilon=1e-7), self.learner)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        # `built`, not `variables`: some variables may exist before the first call.
        self._built = self.learner.built
        if self._built:
            with strategy.scope():
                self.optimizer.build(self.learner.trainable_variables)
        self.predict_fn = distribute_lib.make_predict_fn(strategy, self.learner)
        self._train_step = None

    def ensure_variables(self, episode):
        """Builds the learner's and the optimizer's variables on `episode` if not yet built."""
        if not self._built:
            with self.strategy.scope():
                self.learner(episode, training=False)
                self.optimizer.build(self.learner.trainable_variables)
            self._built = True

    def train_on_episode(self, episode):
        """One update on `episode`; returns floats loss, accuracy, grad_norm, learning_rate
        (and `skipped`, `loss_scale` under loss scaling)."""
        self.ensure_variables(episode)
        if self._train_step is None:
            self._train_step = make_train_step(
                self.strategy, self.learner, self.optimizer, self.step, self.normalized,
                distribute_lib.episode_signature(episode))
        learning_rate = self.schedule.at(int(self.step.numpy()))
        result = {k: float(v) for k, v in self._train_step(episode).items()}
        result["learning_rate"] = learning_rate
        return result
