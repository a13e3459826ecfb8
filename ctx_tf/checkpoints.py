"""Checkpoints of a training run: saving, restoring, and which one a flag means.

Layout of a training directory (`--train_checkpoint_dir`):

    ckpt-<step>.index / .data-*   tf.train.Checkpoint(learner=..., optimizer=..., step=...)
                                  written by tf.train.CheckpointManager (checkpoint_number=step)
    checkpoint                    the manager's state file (latest checkpoint)
    best/ckpt-<step>.*            a copy of the best-validated checkpoint (own manager, max 1)
    best_checkpoint.json          {"step", "valid_accuracy", "valid_ci95", "checkpoint": prefix}
    operative_config.gin          gin's operative config of the run
    run_manifest.json             the run's inputs (records root, sources, image size, gin
                                  files, seeds): `python -m ctx_tf.evaluate` reads it
    valid/                        the last validation's results files (while it runs: its
                                  episode journal)
    final_test/                   the final test's results files (or its episode journal)

A checkpoint to evaluate is named by `resolve_checkpoint`: `best` (what best_checkpoint.json
records), `best:<train dir>`, a best_checkpoint.json path, a directory (its latest checkpoint)
or a path prefix. `load_learner_weights` restores a learner from either layout: ours, or an
official TF1 checkpoint of the google-research code (`ctx_tf.official_checkpoint`, by name).
Paths may be on any `tf.io.gfile` filesystem.
"""

import json
import os
import posixpath
import re
import tempfile

import tensorflow as tf

from ctx_tf import files
from ctx_tf import official_checkpoint
from ctx_tf.errors import UserError

BEST = "best"
BEST_CHECKPOINT_JSON = "best_checkpoint.json"
BEST_SUBDIR = "best"
CHECKPOINT_PREFIX = "ckpt"
OPERATIVE_CONFIG = "operative_config.gin"
RUN_MANIFEST = "run_manifest.json"
RUN_MANIFEST_FORMAT = "ctx_tf.run_manifest/1"
VALID_SUBDIR = "valid"
FINAL_TEST_SUBDIR = "final_test"


class CheckpointError(UserError, ValueError):
    """No usable checkpoint where the flags point, or one that does not fit the learner."""


def _join(directory, name):
    directory = str(directory)
    return posixpath.join(directory, name) if "://" in directory else os.path.join(
        directory, name)


def _dirname(path):
    return posixpath.dirname(path) if "://" in path else os.path.dirname(os.path.abspath(path))


def _step_of(prefix):
    match = re.search(r"-(\d+)$", prefix)
    return int(match.group(1)) if match else None


# ----------------------------------------------------------------------------- saving


def make_checkpoint(learner, optimizer=None, step=None):
    """The checkpoint object of the training layout: `Checkpoint(learner, optimizer, step)`."""
    kwargs = dict(learner=learner)
    if optimizer is not None:
        kwargs["optimizer"] = optimizer
    if step is not None:
        kwargs["step"] = step
    return tf.train.Checkpoint(**kwargs)


def make_managers(checkpoint, directory, max_to_keep):
    """(regular manager, best manager) of a training directory."""
    manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep,
                                         checkpoint_name=CHECKPOINT_PREFIX)
    best = tf.train.CheckpointManager(checkpoint, _join(directory, BEST_SUBDIR), max_to_keep=1,
                                      checkpoint_name=CHECKPOINT_PREFIX)
    return manager, best


def write_best_checkpoint(train_checkpoint_dir, step, valid_accuracy, valid_ci95, prefix):
    """Writes best_checkpoint.json; returns the record."""
    record = dict(step=int(step), valid_accuracy=float(valid_accuracy),
                  valid_ci95=float(valid_ci95), checkpoint=prefix)
    files.write_json(_join(train_checkpoint_dir, BEST_CHECKPOINT_JSON), record)
    return record


def read_best_checkpoint(train_checkpoint_dir):
    """The parsed `best_checkpoint.json` of a training directory, or None if absent."""
    path = _join(train_checkpoint_dir, BEST_CHECKPOINT_JSON)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "r") as f:
        return json.loads(f.read())


def write_run_manifest(train_checkpoint_dir, manifest):
    """Writes `run_manifest.json` (the mapping `manifest` plus its format tag) atomically."""
    files.write_json(_join(train_checkpoint_dir, RUN_MANIFEST),
                     dict(manifest, format=RUN_MANIFEST_FORMAT))


def read_run_manifest(train_checkpoint_dir):
    """The run manifest of a training directory, or None if the run has none (older runs)."""
    path = _join(train_checkpoint_dir, RUN_MANIFEST)
    if not tf.io.gfile.exists(path):
        return None
    try:
        with tf.io.gfile.GFile(path, "r") as f:
            manifest = json.loads(f.read())
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); delete it and pass the "
                              "flags instead") from e
    if not isinstance(manifest, dict) or manifest.get("format") != RUN_MANIFEST_FORMAT:
        raise CheckpointError(f"{path} is not a ctx_tf run manifest (format "
                              f"{RUN_MANIFEST_FORMAT}); delete it and pass the flags instead")
    return manifest


# ----------------------------------------------------------------------------- resolving


def _check_prefix(prefix, where):
    if not tf.io.gfile.exists(prefix + ".index"):
        raise CheckpointError(f"{where}: checkpoint {prefix} not found (no {prefix}.index)")
    return prefix


def _from_best_json(json_path):
    if not tf.io.gfile.exists(json_path):
        raise CheckpointError(
            f"{json_path} does not exist: the training run has not validated yet (training "
            "writes it after each validation), or this is not a training directory")
    with tf.io.gfile.GFile(json_path, "r") as f:
        text = f.read()
    try:
        info = json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{json_path}: malformed JSON: {e}") from None
    if not isinstance(info, dict) or not isinstance(info.get("checkpoint"), str):
        raise CheckpointError(f"{json_path}: no \"checkpoint\" path prefix recorded")
    recorded = info["checkpoint"]
    if os.path.isabs(recorded) or "://" in recorded:
        candidates = [recorded]
    else:
        # A relative prefix may be relative to the training directory, or to the directory
        # training ran in; its last two components (`best/ckpt-N`) to the training directory.
        train_dir = _dirname(json_path)
        tail = posixpath.join(*recorded.replace(os.sep, "/").split("/")[-2:])
        candidates = [_join(train_dir, recorded), os.path.abspath(recorded),
                      _join(train_dir, tail)]
    found = [c for c in candidates if tf.io.gfile.exists(c + ".index")]
    if not found:
        raise CheckpointError(
            f"{json_path}: the recorded checkpoint {recorded!r} was not found (looked for "
            f"{', '.join(c + '.index' for c in dict.fromkeys(candidates))})")
    prefix = found[0]
    details = {k: info[k] for k in ("step", "valid_accuracy", "valid_ci95") if k in info}
    details.setdefault("step", _step_of(prefix))
    return prefix, dict(details, selected_by=json_path)


def resolve_checkpoint(checkpoint, train_checkpoint_dir=None):
    """`(prefix, info)`: the checkpoint path prefix to restore and what is known about it.

    Args:
      checkpoint: `"best"`, `"best:<train dir>"`, a `best_checkpoint.json` path, a directory
        (its latest checkpoint) or a path prefix (`.../ckpt-500`, `.index` allowed).
      train_checkpoint_dir: the training directory, required with `"best"`.

    Returns:
      `info` has `step` (None if unknown), `selected_by` (how it was chosen) and, for the
      best checkpoint, `valid_accuracy` and `valid_ci95`.
    """
    if not checkpoint:
        raise CheckpointError("no checkpoint given: pass --checkpoint=best (with "
                              "--train_checkpoint_dir), a checkpoint directory or a prefix")
    checkpoint = os.fspath(checkpoint)
    if checkpoint.startswith(BEST + ":"):
        checkpoint, train_checkpoint_dir = BEST, checkpoint[len(BEST) + 1:]
    if checkpoint == BEST:
        if not train_checkpoint_dir:
            raise CheckpointError("--checkpoint=best needs --train_checkpoint_dir (the training "
                                  "directory holding best_checkpoint.json)")
        return _from_best_json(_join(train_checkpoint_dir, BEST_CHECKPOINT_JSON))
    if checkpoint.endswith(BEST_CHECKPOINT_JSON) and not tf.io.gfile.isdir(checkpoint):
        return _from_best_json(checkpoint)
    if tf.io.gfile.isdir(checkpoint):
        latest = tf.train.latest_checkpoint(checkpoint)
        if latest is None:
            hint = (" (it has a best_checkpoint.json: use --checkpoint=best "
                    f"--train_checkpoint_dir={checkpoint})"
                    if tf.io.gfile.exists(_join(checkpoint, BEST_CHECKPOINT_JSON)) else "")
            raise CheckpointError(f"no checkpoint in directory {checkpoint}{hint}")
        info = {"step": _step_of(latest), "selected_by": f"latest in {checkpoint}"}
        best_json = _join(checkpoint, BEST_CHECKPOINT_JSON)
        if tf.io.gfile.exists(best_json):
            try:
                _, best_info = _from_best_json(best_json)
            except CheckpointError:
                best_info = None
            if best_info is not None and best_info.get("step") != info["step"]:
                info["note"] = (
                    f"{best_json} selects step {best_info.get('step')} (the model selection of "
                    f"the protocol); evaluating the latest, step {info['step']}. Use "
                    f"--checkpoint=best:{checkpoint} for the selected one.")
        return _check_prefix(latest, checkpoint), info
    if checkpoint.endswith(".index"):
        checkpoint = checkpoint[: -len(".index")]
    return _check_prefix(checkpoint, "--checkpoint"), {
        "step": _step_of(checkpoint), "selected_by": "--checkpoint"}


# ----------------------------------------------------------------------------- restoring


def _variable_keys(checkpoint_path, prefix):
    """Checkpoint keys of variables under the object path `prefix` (e.g. 'learner/')."""
    return {
        name for name, _ in tf.train.list_variables(checkpoint_path)
        if name.startswith(prefix) and name.endswith("/.ATTRIBUTES/VARIABLE_VALUE")
    }


def _own_shapes(learner):
    """{key: shape} of the learner's variables as a `Checkpoint(learner=...)` names them."""
    with tempfile.TemporaryDirectory(prefix="ctx_tf_keys_") as tmp:
        path = tf.train.Checkpoint(learner=learner).write(os.path.join(tmp, "keys"))
        shapes = tf.train.load_checkpoint(path).get_variable_to_shape_map()
        return {k: v for k, v in shapes.items() if k in _variable_keys(path, "learner/")}


def _short(keys):
    keys = [k.replace("/.ATTRIBUTES/VARIABLE_VALUE", "") for k in keys]
    return ", ".join(keys[:20]) + (f", ... ({len(keys)} in all)" if len(keys) > 20 else "")


def restore_learner(learner, checkpoint_path):
    """Restores only the learner's variables from a training checkpoint; returns the prefix.

    `checkpoint_path` is a path prefix or a directory (its latest checkpoint). The learner
    must have its variables (`learners.build_learner(image_size=...)`). Raises
    `CheckpointError` listing missing, unexpected and mis-shaped variables when the checkpoint
    does not hold exactly this learner. Optimizer state and step are ignored.
    """
    path, _ = resolve_checkpoint(checkpoint_path)
    if not learner.variables:
        raise CheckpointError(
            "restore_learner: the learner has no variables yet; build it with "
            "build_learner(image_size=...) or call it on an episode first")
    own = _own_shapes(learner)
    found = _variable_keys(path, "learner/")
    missing, unexpected = sorted(set(own) - found), sorted(found - set(own))
    shape_mismatch = []
    if not missing and not unexpected:
        shapes = tf.train.load_checkpoint(path).get_variable_to_shape_map()
        shape_mismatch = sorted(f"{k}: checkpoint {shapes[k]}, learner {own[k]}"
                                for k in own if list(shapes[k]) != list(own[k]))
    if missing or unexpected or shape_mismatch:
        parts = [f"checkpoint {path} does not match the learner ({type(learner).__name__})"]
        if missing:
            parts.append(f"missing in the checkpoint: {_short(missing)}")
        if unexpected:
            parts.append(f"unexpected in the checkpoint: {_short(unexpected)}")
        if shape_mismatch:
            parts.append(f"shape mismatch: {'; '.join(shape_mismatch[:20])}")
        raise CheckpointError("; ".join(parts))
    status = tf.train.Checkpoint(learner=learner).restore(path)
    status.expect_partial()
    status.assert_existing_objects_matched()
    return path


def restore_backbone(learner, checkpoint_path):
    """Initializes `learner.backbone` only from another run's checkpoint (docs/protocol.md §7.5)."""
    path, _ = resolve_checkpoint(checkpoint_path)
    backbone = getattr(learner, "backbone", None)
    if backbone is None:
        raise CheckpointError(f"{type(learner).__name__} has no `backbone` to initialize from "
                              f"{path}")
    partial = tf.train.Checkpoint(learner=tf.train.Checkpoint(backbone=backbone))
    status = partial.restore(path)
    status.expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise CheckpointError(f"{path}: its backbone does not match {backbone.name}: "
                              f"{str(e)[:2000]}") from e
    return path


def load_learner_weights(learner, prefix):
    """Restores `learner` from `prefix` in either layout; returns a one-line description."""
    if official_checkpoint.is_official_checkpoint(prefix):
        report = official_checkpoint.load_official_checkpoint(learner, prefix)
        return "official TF1 checkpoint: " + report.summary()
    return f"checkpoint {restore_learner(learner, prefix)}"
