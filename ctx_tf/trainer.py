"""Episodic training of a learner (meta-dataset protocol §5.5, §5.6, §6).

Checkpoint layout (shared with `ctx_tf.evaluate`), all in `train_checkpoint_dir`:

    ckpt-<step>.index / .data-*   tf.train.Checkpoint(learner=..., optimizer=..., step=...)
                                  written by tf.train.CheckpointManager (checkpoint_number=step)
    checkpoint                    the manager's state file (latest checkpoint)
    best/ckpt-<step>.*            a copy of the best-validated checkpoint (own manager, max 1)
    best_checkpoint.json          {"step": int, "valid_accuracy": float, "valid_ci95": float,
                                   "checkpoint": "<path prefix of the checkpoint>"}
    operative_config.gin          gin's operative config of the run

The learner is configured by gin through the official bindings
`Trainer.train_learner_class = @CrossTransformerLearner` and
`Trainer.eval_learner_class = @CrossTransformerLearner`; `build_learner()` builds it outside
training too (e.g. for evaluation).
"""

import json
import time
import os
import tempfile

import gin
import numpy as np
import tensorflow as tf

from ctx_tf import distribute as distribute_lib
from ctx_tf.evaluation.stats import mean_and_ci95

# Files of a training directory (see the module docstring).
BEST_CHECKPOINT_JSON = "best_checkpoint.json"
OPERATIVE_CONFIG = "operative_config.gin"
BEST_SUBDIR = "best"
CHECKPOINT_PREFIX = "ckpt"


class TrainerError(RuntimeError):
    """A training run cannot start or continue; the message names the step/file/binding."""


# ----------------------------------------------------------------------------- learners


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
    (`training=True`) or `Trainer.eval_learner_class` (falling back to the train class). Its
    constructor arguments come from gin (e.g. `CrossTransformerLearner.query_dim`,
    `Learner.embedding_fn = @resnet34`, `resnet34.max_stride`).

    With `image_size`, the learner's variables are created at once by a forward pass on a tiny
    blank 1-way 1-shot episode (in inference mode: no batch-norm statistics change), so it can
    be restored and checked right away; otherwise they are created by the first call.
    """
    if learner_class is None:
        learner_class = _bound_learner_class("train" if training else "eval")
        if learner_class is None and not training:
            learner_class = _bound_learner_class("train")
    if learner_class is None:
        raise TrainerError(
            "no learner configured: bind Trainer.train_learner_class (and "
            "Trainer.eval_learner_class), e.g. `Trainer.train_learner_class = "
            "@CrossTransformerLearner` in a gin file")
    if not callable(learner_class):
        raise TrainerError(
            f"Trainer.{'train' if training else 'eval'}_learner_class must be a learner class "
            f"(e.g. @CrossTransformerLearner), got {learner_class!r}")
    learner = learner_class()
    if image_size is not None:
        build_learner_variables(learner, image_size)
    return learner


def dummy_episode(image_size, num_support=1, num_query=1):
    """A blank episode (zeros, all class 0) to create a learner's variables."""
    from ctx_tf.data.episode import Episode  # local: keeps this module light to import

    def images(n):
        return tf.zeros([n, image_size, image_size, 3], tf.float32)

    return Episode(
        support_images=images(num_support),
        support_labels=tf.zeros([num_support], tf.int32),
        support_class_ids=tf.zeros([num_support], tf.int64),
        query_images=images(num_query),
        query_labels=tf.zeros([num_query], tf.int32),
        query_class_ids=tf.zeros([num_query], tf.int64),
    )


def build_learner_variables(learner, image_size):
    """Creates the learner's variables (a forward pass in inference mode on a blank episode)."""
    if not learner.variables:
        learner(dummy_episode(int(image_size)), training=False)
    return learner


# ----------------------------------------------------------------------------- checkpoints


def make_checkpoint(learner, optimizer=None, step=None):
    """The checkpoint object of the training layout: `Checkpoint(learner, optimizer, step)`."""
    kwargs = dict(learner=learner)
    if optimizer is not None:
        kwargs["optimizer"] = optimizer
    if step is not None:
        kwargs["step"] = step
    return tf.train.Checkpoint(**kwargs)


def _variable_keys(checkpoint_path, prefix):
    """Checkpoint keys of variables under the object path `prefix` (e.g. 'learner/')."""
    return {
        name for name, _ in tf.train.list_variables(checkpoint_path)
        if name.startswith(prefix) and name.endswith("/.ATTRIBUTES/VARIABLE_VALUE")
    }


def _learner_keys(learner):
    """The keys the learner's variables get in a `Checkpoint(learner=...)`."""
    with tempfile.TemporaryDirectory(prefix="ctx_tf_keys_") as tmp:
        path = tf.train.Checkpoint(learner=learner).write(os.path.join(tmp, "keys"))
        return _variable_keys(path, "learner/")


def resolve_checkpoint(path):
    """A checkpoint path prefix from a prefix, or from a directory (its latest checkpoint)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise TrainerError(f"no checkpoint in directory {path}")
        return latest
    if not tf.io.gfile.exists(path + ".index"):
        raise TrainerError(f"checkpoint {path} not found (no {path}.index)")
    return path


def restore_learner(learner, checkpoint_path):
    """Restores only the learner's variables from a training checkpoint.

    `checkpoint_path` is a path prefix (`.../ckpt-500`) or a directory (its latest
    checkpoint). The learner must have its variables (build it with
    `build_learner(image_size=...)` or call it once). Raises `TrainerError` listing the
    missing and unexpected variables when the checkpoint does not hold exactly this learner's
    variables (e.g. another backbone or head size). Optimizer state and step are ignored.
    """
    path = resolve_checkpoint(checkpoint_path)
    if not learner.variables:
        raise TrainerError(
            "restore_learner: the learner has no variables yet; build it with "
            "build_learner(image_size=...) or call it on an episode first")
    expected = _learner_keys(learner)
    found = _variable_keys(path, "learner/")
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    shape_mismatch = []
    if not missing and not unexpected:
        reader = tf.train.load_checkpoint(path)
        shapes = reader.get_variable_to_shape_map()
        with tempfile.TemporaryDirectory(prefix="ctx_tf_keys_") as tmp:
            own = tf.train.load_checkpoint(
                tf.train.Checkpoint(learner=learner).write(os.path.join(tmp, "keys")))
            own_shapes = own.get_variable_to_shape_map()
        shape_mismatch = sorted(
            f"{k}: checkpoint {shapes[k]}, learner {own_shapes[k]}"
            for k in expected if list(shapes[k]) != list(own_shapes[k]))
    if missing or unexpected or shape_mismatch:
        def short(keys):
            keys = [k.replace("/.ATTRIBUTES/VARIABLE_VALUE", "") for k in keys]
            return ", ".join(keys[:20]) + (f", ... ({len(keys)} in all)" if len(keys) > 20 else "")
        parts = [f"checkpoint {path} does not match the learner ({type(learner).__name__})"]
        if missing:
            parts.append(f"missing in the checkpoint: {short(missing)}")
        if unexpected:
            parts.append(f"unexpected in the checkpoint: {short(unexpected)}")
        if shape_mismatch:
            parts.append(f"shape mismatch: {'; '.join(shape_mismatch[:20])}")
        raise TrainerError("; ".join(parts))
    status = tf.train.Checkpoint(learner=learner).restore(path)
    status.expect_partial()
    status.assert_existing_objects_matched()
    return path


def write_json_atomic(path, payload):
    """Writes JSON to `path` via a temporary file in the same directory + os.replace."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_text_atomic(path, text):
    """Writes text to `path` via a temporary file in the same directory + os.replace."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_best_checkpoint(train_checkpoint_dir):
    """The parsed `best_checkpoint.json` of a training directory, or None if absent."""
    path = os.path.join(os.fspath(train_checkpoint_dir), BEST_CHECKPOINT_JSON)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)



# ----------------------------------------------------------------------------- benchmark


@gin.configurable
def benchmark(train_datasets="", eval_datasets="", use_dumped_episodes=False,
              restrict_classes=None, restrict_num_per_class=None):
    """The datasets of a run: `(train_dataset_list, eval_dataset_list)` (official names).

    `train_datasets` and `eval_datasets` are comma-separated source names, i.e. folder names
    under `--records_root_dir`. Dumped episodes and class restrictions are not supported.
    """
    if use_dumped_episodes:
        raise TrainerError("benchmark.use_dumped_episodes = True is not supported by ctx_tf")
    if restrict_classes or restrict_num_per_class:
        raise TrainerError(
            "benchmark.restrict_classes / benchmark.restrict_num_per_class are not supported")

    def split(names, binding):
        if not isinstance(names, str):
            raise TrainerError(f"{binding} must be a comma-separated string, got {names!r}")
        return [n.strip() for n in names.split(",") if n.strip()]

    return (split(train_datasets, "benchmark.train_datasets"),
            split(eval_datasets, "benchmark.eval_datasets"))


@gin.configurable
def final_test(num_episodes=600, seed=5678, enabled=True):
    """The launcher's final TEST evaluation (`python -m ctx_tf.train`): number of episodes (600
    officially; gin/demo.gin uses fewer), their seed, and whether it runs at all."""
    return dict(num_episodes=num_episodes, seed=seed, enabled=enabled)


# ----------------------------------------------------------------------------- maths


def learning_rate_at(step, learning_rate, decay_learning_rate, decay_every, decay_rate):
    """Staircase exponential decay: `lr0 * decay_rate ** floor(step / decay_every)` (§5.6)."""
    if not decay_learning_rate:
        return float(learning_rate)
    return float(learning_rate) * float(decay_rate) ** (int(step) // int(decay_every))


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


def nearest_centroid_accuracy(episode):
    """Accuracy of nearest-centroid (squared Euclidean) on raw pixels, the baseline printed
    next to the learner's accuracy."""
    support = np.asarray(episode.support_images, np.float64)
    query = np.asarray(episode.query_images, np.float64)
    s_labels = np.asarray(episode.support_labels)
    q_labels = np.asarray(episode.query_labels)
    support = support.reshape(len(support), -1)
    query = query.reshape(len(query), -1)
    way = int(s_labels.max()) + 1
    centroids = np.stack([support[s_labels == c].mean(axis=0) for c in range(way)])
    distances = ((query[:, None, :] - centroids[None]) ** 2).sum(axis=-1)
    return float((distances.argmin(axis=1) == q_labels).mean())


# ----------------------------------------------------------------------------- forward pass


def learner_parts(learner):
    """(backbone, head) of a learner: its `Backbone` layer and its `CrossTransformer` layer
    (None for a prototypical learner)."""
    from ctx_tf.models.backbones import Backbone
    from ctx_tf.models.cross_transformer import CrossTransformer

    backbone = head = None
    for value in vars(learner).values():
        if isinstance(value, Backbone) and backbone is None:
            backbone = value
        elif isinstance(value, CrossTransformer) and head is None:
            head = value
    if backbone is None:
        raise TrainerError(
            f"{type(learner).__name__} has no backbone attribute (a ctx_tf.models.backbones "
            "Backbone layer); the trainer splits episodes over replicas through it")
    return backbone, head


def replica_forward(learner, episode, training):
    """Loss and accuracy terms of one episode, computed on this replica's share.

    Every replica receives the whole episode, embeds its contiguous chunks of the support and
    query sets (batch-norm moments all-reduced inside the layers), gathers the support keys,
    values and one-hot labels of all replicas (`aggregate`) and computes logits for its own
    queries. Returns a dict of per-replica tensors:

      loss: local CE sum / total queries + regularization / replicas (their sum over replicas
        is the episode loss: mean CE + L2, so summed gradients are the episode gradients);
      ce_sum, correct: local sums; num_query: total queries.
    """
    replica_id, num_replicas = distribute_lib.replica_info()
    backbone, head = learner_parts(learner)
    num_classes = tf.reduce_max(episode.support_labels) + 1
    num_query = tf.shape(episode.query_labels)[0]
    support_images = distribute_lib.local_chunk(episode.support_images, replica_id, num_replicas)
    support_labels = distribute_lib.local_chunk(episode.support_labels, replica_id, num_replicas)
    query_images = distribute_lib.local_chunk(episode.query_images, replica_id, num_replicas)
    query_labels = distribute_lib.local_chunk(episode.query_labels, replica_id, num_replicas)

    support_features, moments = backbone(support_images, training=training)
    if not getattr(learner, "backprop_through_moments", True):
        moments = tf.nest.map_structure(tf.stop_gradient, moments)
    query_features, _ = backbone(query_images, training=training, moments=moments)
    one_hot = tf.one_hot(support_labels, num_classes, dtype=tf.float32)
    if head is not None:
        support_keys, support_values = head.project(support_features)
        query_keys, query_values = head.project(query_features)
        support_keys = distribute_lib.aggregate(support_keys)
        support_values = distribute_lib.aggregate(support_values)
        one_hot = distribute_lib.aggregate(one_hot)
        logits = head.logits_from_projections(
            support_keys, support_values, one_hot, query_keys, query_values,
            num_classes=num_classes)
    else:
        flat = lambda x: tf.reshape(x, [tf.shape(x)[0], -1])
        support_features = distribute_lib.aggregate(flat(support_features))
        one_hot = distribute_lib.aggregate(one_hot)
        query_features = flat(query_features)
        prototypes = tf.matmul(one_hot, support_features, transpose_a=True) / (
            tf.reduce_sum(one_hot, axis=0)[:, None])
        logits = -tf.reduce_sum(
            tf.square(query_features[:, None, :] - prototypes[None]), axis=-1)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=query_labels, logits=logits)
    ce_sum = tf.reduce_sum(ce)
    correct = tf.reduce_sum(tf.cast(
        tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), query_labels), tf.float32))
    regularization = tf.add_n(learner.losses) if learner.losses else tf.constant(0.0)
    loss = ce_sum / tf.cast(num_query, tf.float32) + regularization / float(num_replicas)
    return dict(loss=loss, ce_sum=ce_sum, correct=correct, num_query=num_query,
                regularization=regularization)


# ----------------------------------------------------------------------------- trainer


def summary_scalar(name, value, step=None):
    """A TensorBoard scalar summary that needs only TensorFlow (tf.summary.scalar needs the
    tensorboard package): the 'scalars' plugin reads a float32 scalar tensor."""
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    return tf.summary.write(name, tf.constant(float(value), tf.float32), step=step,
                            metadata=metadata.SerializeToString())


def _derive_seed(*keys):
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint32)[0])


def _format_duration(seconds):
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}"


@gin.configurable
class Trainer:
    """Episodic trainer: one episode per update, gin names as the official `Trainer`.

    Official parameters (same meaning): num_updates, learning_rate, decay_learning_rate,
    decay_every, decay_rate, normalized_gradient_descent, checkpoint_every, validate_every,
    log_every, num_eval_episodes, checkpoint_to_restore, distribute, train_learner_class,
    eval_learner_class (must equal the train class: one learner object serves both, with a
    `training` flag), data_config, train_episode_config, eval_episode_config. Accepted and
    ignored (official surface): batch_size, experiment_name, pretrained_source,
    enable_tf_optimizations.

    Our additions: seed (initialization and training episodes; `None`: drawn at random, so a
    resumed run then differs from an uninterrupted one in its data order), eval_seed (validation episodes, the
    same every validation), max_checkpoints_to_keep (regular checkpoints; the best one is
    kept apart in `best/`), tpu (a TPU name/address: TPUStrategy). The launcher's final test
    is configured by `final_test`.

    Launcher arguments: records_root_dir, train_dataset_list, eval_dataset_list,
    checkpoint_dir, summary_dir; tests may pass `strategy`, `train_episodes_fn(seed)` and
    `eval_episodes_fn(split, seed)` (iterables of `Episode`) instead of records.
    """

    def __init__(self, num_updates=75000, learning_rate=1e-4, decay_learning_rate=False,
                 decay_every=5000, decay_rate=0.5, normalized_gradient_descent=False,
                 checkpoint_every=500, validate_every=500, log_every=100,
                 num_eval_episodes=600, checkpoint_to_restore="", distribute=False,
                 train_learner_class=None, eval_learner_class=None, data_config=None,
                 train_episode_config=None, eval_episode_config=None, seed=0, eval_seed=1234,
                 max_checkpoints_to_keep=3, tpu=None, batch_size=None, experiment_name=None,
                 pretrained_source=None, enable_tf_optimizations=None,
                 records_root_dir=None, train_dataset_list=(), eval_dataset_list=(),
                 checkpoint_dir=None, summary_dir=None, strategy=None,
                 train_episodes_fn=None, eval_episodes_fn=None, print_fn=None):
        del batch_size, experiment_name, pretrained_source, enable_tf_optimizations
        for name, value in (("num_updates", num_updates), ("checkpoint_every", checkpoint_every),
                            ("validate_every", validate_every), ("log_every", log_every),
                            ("num_eval_episodes", num_eval_episodes),
                            ("decay_every", decay_every)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (
                    0 if name == "num_updates" else 1):
                raise TrainerError(f"Trainer.{name} must be a positive integer, got {value!r}")
        if not learning_rate > 0:
            raise TrainerError(f"Trainer.learning_rate must be > 0, got {learning_rate!r}")
        if decay_learning_rate and not 0 < decay_rate <= 1:
            raise TrainerError(f"Trainer.decay_rate must be in (0, 1], got {decay_rate!r}")
        if (eval_learner_class is not None and train_learner_class is not None
                and eval_learner_class is not train_learner_class):
            raise TrainerError(
                "Trainer.eval_learner_class must be the same class as "
                "Trainer.train_learner_class: ctx_tf uses one learner for training and "
                f"evaluation (got {train_learner_class!r} and {eval_learner_class!r})")
        self.num_updates = num_updates
        self.learning_rate = float(learning_rate)
        self.decay_learning_rate = bool(decay_learning_rate)
        self.decay_every = decay_every
        self.decay_rate = float(decay_rate)
        self.normalized_gradient_descent = bool(normalized_gradient_descent)
        self.checkpoint_every = checkpoint_every
        self.validate_every = validate_every
        self.log_every = log_every
        self.num_eval_episodes = num_eval_episodes
        self.checkpoint_to_restore = checkpoint_to_restore or ""
        self.learner_class = train_learner_class or eval_learner_class
        self.data_config = data_config
        self.train_episode_config = train_episode_config
        self.eval_episode_config = eval_episode_config
        if seed is None:
            seed = int.from_bytes(os.urandom(4), "little")
        self.seed = int(seed)
        self.eval_seed = int(eval_seed)
        self.max_checkpoints_to_keep = max_checkpoints_to_keep
        self.records_root_dir = records_root_dir
        self.train_dataset_list = list(train_dataset_list)
        self.eval_dataset_list = list(eval_dataset_list)
        # Absolute: best_checkpoint.json must point at the checkpoint from any directory.
        self.checkpoint_dir = os.path.abspath(checkpoint_dir) if checkpoint_dir else None
        self.summary_dir = os.path.abspath(summary_dir) if summary_dir else None
        self.train_episodes_fn = train_episodes_fn
        self.eval_episodes_fn = eval_episodes_fn
        self.print = print_fn or (lambda message: print(message, flush=True))
        if self.learner_class is None:
            raise TrainerError("no learner configured: bind Trainer.train_learner_class, e.g. "
                               "`Trainer.train_learner_class = @CrossTransformerLearner`")
        if data_config is None and (train_episodes_fn is None or eval_episodes_fn is None):
            raise TrainerError("Trainer.data_config is unbound; bind "
                               "`Trainer.data_config = @DataConfig()`")
        self.image_size = getattr(data_config, "image_height", None)
        if strategy is None:
            strategy = distribute_lib.make_strategy(distribute=distribute, tpu=tpu)
        self.strategy = strategy
        self._train_specs = None
        self._eval_specs = None
        self._build()

    # ------------------------------------------------------------------ model and optimizer

    def learning_rate_at(self, step):
        return learning_rate_at(step, self.learning_rate, self.decay_learning_rate,
                                self.decay_every, self.decay_rate)

    def _build(self):
        from ctx_tf.keras import keras

        # Trainer.seed also fixes the initialization, so a run is reproducible end to end.
        keras.utils.set_random_seed(self.seed % (2 ** 31))
        with self.strategy.scope():
            self.learner = build_learner(learner_class=self.learner_class)
            if self.image_size is not None:
                build_learner_variables(self.learner, self.image_size)
            if self.decay_learning_rate:
                schedule = keras.optimizers.schedules.ExponentialDecay(
                    self.learning_rate, self.decay_every, self.decay_rate, staircase=True)
            else:
                schedule = self.learning_rate
            # Keras Adam with epsilon 1e-7, as the official distributed (CTX) path.
            self.optimizer = keras.optimizers.Adam(learning_rate=schedule, epsilon=1e-7)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self._variables_built = bool(self.learner.variables)
        if self._variables_built:
            with self.strategy.scope():
                self.optimizer.build(self.learner.trainable_variables)
        self.checkpoint = make_checkpoint(self.learner, self.optimizer, self.step)
        self._train_step = None
        self._eval_step = None

    def _ensure_variables(self, episode):
        if not self._variables_built:
            with self.strategy.scope():
                self.learner(episode, training=False)
                self.optimizer.build(self.learner.trainable_variables)
            self._variables_built = True

    def _episode_signature(self, episode):
        def spec(t):
            t = tf.convert_to_tensor(t)
            return tf.TensorSpec([None] + t.shape.as_list()[1:], t.dtype)
        return type(episode)(*[spec(t) for t in episode])

    def _make_train_step(self, signature):
        strategy, learner, optimizer = self.strategy, self.learner, self.optimizer
        normalized = self.normalized_gradient_descent

        def replica_fn(episode):
            variables = learner.trainable_variables
            with tf.GradientTape() as tape:
                out = replica_forward(learner, episode, training=True)
            gradients = tape.gradient(out["loss"], variables)
            gradients = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                         for g, v in zip(gradients, variables)]
            # Cross-replica sum first: the norm is that of the episode gradient (§5.5).
            gradients = distribute_lib.all_reduce_sum(gradients)
            norm = tf.sqrt(global_norm_squared(gradients))
            if normalized:
                gradients, _ = normalize_gradients(gradients)
            optimizer.apply_gradients(zip(gradients, variables),
                                      skip_gradients_aggregation=True)
            loss, ce_sum, correct = distribute_lib.all_reduce_sum(
                [out["loss"], out["ce_sum"], out["correct"]])
            num_query = tf.cast(out["num_query"], tf.float32)
            return dict(loss=loss, accuracy=correct / num_query, grad_norm=norm,
                        regularization=out["regularization"])

        @tf.function(input_signature=[signature], autograph=False)
        def train_step(episode):
            results = strategy.run(replica_fn, args=(episode,))
            self.step.assign_add(1)
            return distribute_lib.first_replica_value(strategy, results)

        return train_step

    def _make_eval_step(self, signature):
        strategy, learner = self.strategy, self.learner

        def replica_fn(episode):
            out = replica_forward(learner, episode, training=False)
            loss, correct = distribute_lib.all_reduce_sum([out["loss"], out["correct"]])
            return dict(loss=loss, accuracy=correct / tf.cast(out["num_query"], tf.float32))

        @tf.function(input_signature=[signature], autograph=False)
        def eval_step(episode):
            return distribute_lib.first_replica_value(
                strategy, strategy.run(replica_fn, args=(episode,)))

        return eval_step

    def _make_gradient_fn(self, signature):
        strategy, learner = self.strategy, self.learner

        def replica_fn(episode):
            variables = learner.trainable_variables
            with tf.GradientTape() as tape:
                out = replica_forward(learner, episode, training=True)
            gradients = tape.gradient(out["loss"], variables)
            gradients = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                         for g, v in zip(gradients, variables)]
            return distribute_lib.all_reduce_sum([out["loss"]] + gradients)

        @tf.function(input_signature=[signature], autograph=False)
        def gradient_fn(episode):
            return distribute_lib.first_replica_value(
                strategy, strategy.run(replica_fn, args=(episode,)))

        return gradient_fn

    def episode_gradients(self, episode):
        """(loss, raw gradients of the trainable variables) of one episode, summed over
        replicas, without an update (batch-norm EMAs do move: a training-mode pass)."""
        self._ensure_variables(episode)
        if getattr(self, "_gradient_fn", None) is None:
            self._gradient_fn = self._make_gradient_fn(self._episode_signature(episode))
        out = self._gradient_fn(episode)
        return float(out[0]), [g.numpy() for g in out[1:]]

    def train_on_episode(self, episode):
        """One update on `episode`; returns floats loss, accuracy, grad_norm, learning_rate."""
        self._ensure_variables(episode)
        if self._train_step is None:
            self._train_step = self._make_train_step(self._episode_signature(episode))
        learning_rate = self.learning_rate_at(int(self.step.numpy()))
        out = self._train_step(episode)
        result = {k: float(v) for k, v in out.items()}
        result["learning_rate"] = learning_rate
        return result

    def evaluate_episode(self, episode):
        """(accuracy, loss) of the learner in inference mode on one episode."""
        self._ensure_variables(episode)
        if self._eval_step is None:
            self._eval_step = self._make_eval_step(self._episode_signature(episode))
        out = self._eval_step(episode)
        return float(out["accuracy"]), float(out["loss"])

    # ------------------------------------------------------------------ data

    def _specs(self, names, what):
        from ctx_tf.data import dataset_spec as spec_lib

        if not names:
            raise TrainerError(f"no {what} datasets: bind benchmark.{what}_datasets")
        if not self.records_root_dir:
            raise TrainerError("no records root: pass --records_root_dir")
        specs = []
        for name in names:
            directory = os.path.join(self.records_root_dir, name)
            if not os.path.isdir(directory):
                raise TrainerError(
                    f"records of dataset {name!r} not found: {directory} is not a directory "
                    f"(benchmark.{what}_datasets, --records_root_dir={self.records_root_dir})")
            try:
                specs.append(spec_lib.load_dataset_spec(directory))
            except (ValueError, OSError) as e:
                raise TrainerError(f"dataset {name!r}: {e}") from e
        return specs

    def _pipeline(self, specs, split, config, seed, training):
        from ctx_tf.data import pipeline as pipeline_lib

        data_kwargs = self.data_config.pipeline_kwargs()
        simclr = getattr(config, "simclr_episode_fraction", 0.0) if training else 0.0
        ignore = getattr(config, "ignore_hierarchy_probability", 0.0) if training else 0.0
        flags = [pipeline_lib.use_ontologies(
            s.name, getattr(config, "ignore_dag_ontology", False),
            getattr(config, "ignore_bilevel_ontology", False)) for s in specs]
        if len(specs) == 1:
            dataset = pipeline_lib.make_one_source_episode_pipeline(
                specs[0], flags[0][0], flags[0][1], split, config,
                ignore_hierarchy_probability=ignore, simclr_episode_fraction=simclr,
                seed=seed, **data_kwargs)
        else:
            if ignore:
                raise TrainerError(
                    "train/EpisodeDescriptionConfig.ignore_hierarchy_probability > 0 is not "
                    "supported with several training datasets (the multi-source pipeline "
                    "ignores it, as officially)")
            dataset = pipeline_lib.make_multisource_episode_pipeline(
                specs, [f[0] for f in flags], [f[1] for f in flags], split, config,
                simclr_episode_fraction=simclr, seed=seed, **data_kwargs)
        return (episode for episode, _ in dataset)

    def check_data(self):
        """Loads the dataset specs of the run (fails fast, before any graph is built)."""
        if self.train_episodes_fn is None:
            self._train_specs = self._specs(self.train_dataset_list, "train")
        if self.eval_episodes_fn is None:
            self._eval_specs = self._specs(self.eval_dataset_list, "eval")
        return self._train_specs, self._eval_specs

    def train_episodes(self, seed):
        """Training episodes (TRAIN split of the train datasets) from `seed`."""
        if self.train_episodes_fn is not None:
            return iter(self.train_episodes_fn(seed))
        from ctx_tf.data.dataset_spec import Split

        if self._train_specs is None:
            self.check_data()
        return self._pipeline(self._train_specs, Split.TRAIN, self.train_episode_config, seed,
                              training=True)

    def eval_episodes(self, split, seed):
        """Evaluation episodes of `split` ('valid' or 'test') of the eval datasets."""
        if self.eval_episodes_fn is not None:
            return iter(self.eval_episodes_fn(split, seed))
        from ctx_tf.data.dataset_spec import Split

        if self._eval_specs is None:
            self.check_data()
        if split == "test" and len(self._eval_specs) != 1:
            raise TrainerError(
                "a test evaluation takes exactly one dataset: bind "
                f"benchmark.eval_datasets to one of {self.eval_dataset_list}")
        return self._pipeline(self._eval_specs, {"valid": Split.VALID, "test": Split.TEST}[split],
                              self.eval_episode_config, seed, training=False)

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, split="valid", num_episodes=None, seed=None, with_baseline=False):
        """Mean accuracy and 95% CI over `num_episodes` episodes of `split`.

        Returns a dict: mean, ci95, accuracies, and with `with_baseline` the raw-pixel
        nearest-centroid baseline's baseline_mean / baseline_ci95 on the same episodes.
        """
        num_episodes = num_episodes or self.num_eval_episodes
        seed = self.eval_seed if seed is None else seed
        accuracies, baseline = [], []
        for episode in self.eval_episodes(split, seed):
            accuracy, _ = self.evaluate_episode(episode)
            accuracies.append(accuracy)
            if with_baseline:
                baseline.append(nearest_centroid_accuracy(episode))
            if len(accuracies) == num_episodes:
                break
        if len(accuracies) < num_episodes:
            raise TrainerError(f"the {split} episodes ran out after {len(accuracies)} of "
                               f"{num_episodes}")
        mean, ci95 = mean_and_ci95(accuracies)
        result = dict(mean=mean, ci95=ci95, accuracies=accuracies, num_episodes=num_episodes)
        if with_baseline:
            result["baseline_mean"], result["baseline_ci95"] = mean_and_ci95(baseline)
            result["baseline_accuracies"] = baseline
        return result

    # ------------------------------------------------------------------ checkpoints

    def _check_writable(self, directory, what):
        try:
            os.makedirs(directory, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=directory, prefix=".write_probe_")
            probe.close()
        except OSError as e:
            raise TrainerError(f"{what} {directory} is not writable: {e}") from e

    def _managers(self, directory=None):
        directory = directory or self.checkpoint_dir
        manager = tf.train.CheckpointManager(
            self.checkpoint, directory, max_to_keep=self.max_checkpoints_to_keep,
            checkpoint_name=CHECKPOINT_PREFIX)
        best = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(directory, BEST_SUBDIR), max_to_keep=1,
            checkpoint_name=CHECKPOINT_PREFIX)
        return manager, best

    def is_chief(self):
        """False only for the non-chief workers of a multi-worker run."""
        if not isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return True
        resolver = self.strategy.cluster_resolver
        task_type, task_id = resolver.task_type, resolver.task_id
        if task_type in (None, "chief"):
            return True
        return (task_type == "worker" and task_id == 0
                and "chief" not in resolver.cluster_spec().as_dict())

    def _restore_backbone(self, path):
        """Initializes the backbone only from another run's checkpoint (§5.6)."""
        path = resolve_checkpoint(path)
        backbone, _ = learner_parts(self.learner)
        attribute = next(k for k, v in vars(self.learner).items() if v is backbone)
        partial = tf.train.Checkpoint(learner=tf.train.Checkpoint(**{attribute: backbone}))
        status = partial.restore(path)
        status.expect_partial()
        try:
            status.assert_existing_objects_matched()
        except AssertionError as e:
            raise TrainerError(
                f"Trainer.checkpoint_to_restore={path}: its backbone does not match "
                f"{backbone.name}: {str(e)[:2000]}") from e
        return path

    def _restore_or_initialize(self, manager):
        latest = manager.latest_checkpoint
        if latest:
            status = self.checkpoint.restore(latest)
            try:
                status.assert_existing_objects_matched()
            except AssertionError as e:
                raise TrainerError(f"cannot resume from {latest}: {str(e)[:2000]}") from e
            self.print(f"Resumed from {latest} (step {int(self.step.numpy())}).")
            return True
        if self.checkpoint_to_restore:
            path = self._restore_backbone(self.checkpoint_to_restore)
            self.print(f"Initialized the backbone from {path} (Trainer.checkpoint_to_restore).")
        return False

    def _save(self, manager, step):
        return manager.save(checkpoint_number=step)

    def write_operative_config(self):
        if self.checkpoint_dir:
            write_text_atomic(os.path.join(self.checkpoint_dir, OPERATIVE_CONFIG),
                              gin.operative_config_str())

    # ------------------------------------------------------------------ the loop

    def train(self):
        """Runs (or resumes) training to `num_updates`; returns the best validation record."""
        if not self.checkpoint_dir:
            raise TrainerError("no checkpoint directory: pass --train_checkpoint_dir")
        self._check_writable(self.checkpoint_dir, "checkpoint directory")
        if self.summary_dir:
            self._check_writable(self.summary_dir, "summary directory")
        if self.train_episodes_fn is None or self.eval_episodes_fn is None:
            self.check_data()
        chief = self.is_chief()
        manager, best_manager = self._managers(self.checkpoint_dir)
        resumed = self._restore_or_initialize(manager)
        if not chief:
            # Other workers of a multi-worker run save into a private directory (every worker
            # takes part in saving, only the chief's files are kept) and write nothing else.
            private = tempfile.mkdtemp(prefix="ctx_tf_worker_")
            manager, best_manager = self._managers(private)
        writer = (tf.summary.create_file_writer(self.summary_dir)
                  if self.summary_dir and chief else tf.summary.create_noop_writer())
        best = read_best_checkpoint(self.checkpoint_dir) if resumed else None
        step = int(self.step.numpy())
        if chief:
            self.write_operative_config()

        def validate(step):
            start = time.time()
            result = self.evaluate("valid")
            with writer.as_default(step=step):
                summary_scalar("valid_acc/mean", result["mean"])
                summary_scalar("valid_acc/ci95", result["ci95"])
            improved = best is None or result["mean"] > best["valid_accuracy"]
            self.print(f"[step {step}] validation: {100 * result['mean']:.2f} +- "
                       f"{100 * result['ci95']:.2f} % over {result['num_episodes']} episodes "
                       f"({time.time() - start:.1f} s){' (best so far)' if improved else ''}")
            return result, improved

        def record_best(step, result):
            path = self._save(best_manager, step)
            record = dict(step=int(step), valid_accuracy=result["mean"],
                          valid_ci95=result["ci95"], checkpoint=path)
            if chief:
                write_json_atomic(os.path.join(self.checkpoint_dir, BEST_CHECKPOINT_JSON), record)
            return record

        if not resumed:
            result, _ = validate(step)
            self._save(manager, step)
            best = record_best(step, result)
        episodes = None
        start_time, start_step = time.time(), step
        window_time, window_step = start_time, step
        while step < self.num_updates:
            if episodes is None or step % self.checkpoint_every == 0:
                # One stream per checkpoint period, seeded by (seed, first step): a run resumed
                # from a checkpoint sees exactly the episodes of an uninterrupted run.
                episodes = self.train_episodes(_derive_seed(self.seed, step))
            try:
                episode = next(episodes)
            except StopIteration:
                raise TrainerError(f"the training episodes ran out at step {step}")
            out = self.train_on_episode(episode)
            step += 1
            if not (np.isfinite(out["loss"]) and np.isfinite(out["grad_norm"])):
                last = manager.latest_checkpoint
                raise TrainerError(
                    f"non-finite loss {out['loss']} (gradient norm {out['grad_norm']}) at update "
                    f"{step}; training stopped. The last good checkpoint is {last}.")
            if step % self.log_every == 0 or step == self.num_updates or step == start_step + 1:
                stats = episode_stats(episode)
                with writer.as_default(step=step):
                    summary_scalar("train/loss", out["loss"])
                    summary_scalar("train/accuracy", out["accuracy"])
                    summary_scalar("train/learning_rate", out["learning_rate"])
                    summary_scalar("train/grad_norm", out["grad_norm"])
                    summary_scalar("episode/way", stats["way"])
                    summary_scalar("episode/mean_shot", stats["mean_shot"])
                    summary_scalar("episode/num_support", stats["num_support"])
                    summary_scalar("episode/num_query", stats["num_query"])
                now = time.time()
                rate = (step - window_step) / max(now - window_time, 1e-9)
                overall = (step - start_step) / max(now - start_time, 1e-9)
                eta = (self.num_updates - step) / max(overall, 1e-9)
                self.print(
                    f"[step {step}/{self.num_updates}] loss {out['loss']:.4f} "
                    f"acc {out['accuracy']:.3f} lr {out['learning_rate']:.3g} "
                    f"|g| {out['grad_norm']:.3g} way {stats['way']} shots {stats['mean_shot']:.1f} "
                    f"| {rate:.2f} updates/s, ETA {_format_duration(eta)}")
                window_time, window_step = now, step
            improved = False
            if step % self.validate_every == 0 or step == self.num_updates:
                result, improved = validate(step)
            if step % self.checkpoint_every == 0 or step == self.num_updates:
                self._save(manager, step)
            if improved:
                best = record_best(step, result)
            if step % self.validate_every == 0 or step % self.checkpoint_every == 0:
                window_time = time.time()  # updates/s counts training time only
        writer.flush()
        if chief:
            self.write_operative_config()
        return best
