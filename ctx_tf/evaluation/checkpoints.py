"""Which checkpoint an evaluation restores.

* `best`: the checkpoint recorded in `<train_checkpoint_dir>/best_checkpoint.json` (written by
  the trainer after each validation, see `ctx_tf.trainer`); `best:<dir>` names the training
  directory in the same flag;
* a path to a `best_checkpoint.json` file: the checkpoint it records;
* a directory: its latest checkpoint (`tf.train.latest_checkpoint`);
* a checkpoint path prefix (`.../ckpt-500`, i.e. `ckpt-500.index` exists).

Paths may be on any `tf.io.gfile` filesystem.
"""

import json
import os
import posixpath
import re

import tensorflow as tf

BEST = "best"
BEST_CHECKPOINT_JSON = "best_checkpoint.json"  # the trainer's file name


class CheckpointError(ValueError):
    """No usable checkpoint where the flags point."""


def _join(directory, name):
    return posixpath.join(directory, name) if "://" in directory else os.path.join(
        directory, name)


def _dirname(path):
    return posixpath.dirname(path) if "://" in path else os.path.dirname(os.path.abspath(path))


def _step_of(prefix):
    match = re.search(r"-(\d+)$", prefix)
    return int(match.group(1)) if match else None


def _check_prefix(prefix, where):
    if not tf.io.gfile.exists(prefix + ".index"):
        raise CheckpointError(f"{where}: checkpoint {prefix} not found (no {prefix}.index)")
    return prefix


def _from_best_json(json_path):
    if not tf.io.gfile.exists(json_path):
        raise CheckpointError(
            f"{json_path} does not exist: the training run has not validated yet (the trainer "
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
        or a path prefix.
      train_checkpoint_dir: the training directory, required with `"best"`.

    Returns:
      `info` has `step` (None if unknown), `selected_by` (how it was chosen) and, for the
      best checkpoint, `valid_accuracy` and `valid_ci95`.
    """
    if not checkpoint:
        raise CheckpointError("no checkpoint given: pass --checkpoint=best (with "
                              "--train_checkpoint_dir), a checkpoint directory or a prefix")
    checkpoint = str(checkpoint)
    if checkpoint.startswith(BEST + ":"):
        # best:<train dir>, the training directory given in the same flag.
        checkpoint, train_checkpoint_dir = BEST, checkpoint[len(BEST) + 1:]
    if checkpoint == BEST:
        if not train_checkpoint_dir:
            raise CheckpointError("--checkpoint=best needs --train_checkpoint_dir (the training "
                                  "directory holding best_checkpoint.json)")
        return _from_best_json(_join(str(train_checkpoint_dir), BEST_CHECKPOINT_JSON))
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
                best_prefix, best_info = _from_best_json(best_json)
            except CheckpointError:
                best_prefix, best_info = None, {}
            if best_prefix is not None and best_info.get("step") != info["step"]:
                info["note"] = (
                    f"{best_json} selects step {best_info.get('step')} (the model selection of "
                    f"the protocol); evaluating the latest, step {info['step']}. Use "
                    f"--checkpoint=best:{checkpoint} for the selected one.")
        return _check_prefix(latest, checkpoint), info
    if checkpoint.endswith(".index"):
        checkpoint = checkpoint[: -len(".index")]
    return _check_prefix(checkpoint, "--checkpoint"), {
        "step": _step_of(checkpoint), "selected_by": "--checkpoint"}
