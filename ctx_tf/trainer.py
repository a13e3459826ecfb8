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
import os
import tempfile

import gin
import numpy as np
import tensorflow as tf

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


def mean_and_ci95(accuracies):
    """(mean, 1.96 * std(ddof=0) / sqrt(n)) of per-episode accuracies (§6)."""
    accuracies = np.asarray(accuracies, np.float64)
    if accuracies.size == 0:
        raise ValueError("mean_and_ci95: no episode accuracies")
    return float(accuracies.mean()), float(1.96 * accuracies.std() / np.sqrt(accuracies.size))


# ----------------------------------------------------------------------------- trainer


@gin.configurable
class Trainer:
    """Episodic trainer (one episode per update); gin names as the official `Trainer`.

    The training loop lands in a following commit; the gin surface is final.
    """

    def __init__(self, num_updates=75000, learning_rate=1e-4, decay_learning_rate=False,
                 decay_every=5000, decay_rate=0.5, normalized_gradient_descent=False,
                 checkpoint_every=500, validate_every=500, log_every=100,
                 num_eval_episodes=600, checkpoint_to_restore="", distribute=False,
                 train_learner_class=None, eval_learner_class=None, data_config=None,
                 train_episode_config=None, eval_episode_config=None, **unused):
        self.num_updates = num_updates
