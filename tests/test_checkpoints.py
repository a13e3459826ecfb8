"""Which checkpoint `--checkpoint` selects."""

import json
import os

import pytest
import tensorflow as tf

from ctx_tf import checkpoints
from ctx_tf.checkpoints import CheckpointError, resolve_checkpoint


@pytest.fixture
def train_dir(tmp_path):
    """A training directory as the trainer writes it: ckpt-0, ckpt-5, best/ckpt-3 + json."""
    ckpt = tf.train.Checkpoint(v=tf.Variable(1.0))
    manager = tf.train.CheckpointManager(ckpt, str(tmp_path), max_to_keep=3)
    manager.save(checkpoint_number=0)
    manager.save(checkpoint_number=5)
    best = tf.train.CheckpointManager(ckpt, str(tmp_path / "best"), max_to_keep=1)
    best_path = best.save(checkpoint_number=3)
    (tmp_path / "best_checkpoint.json").write_text(json.dumps(
        {"step": 3, "valid_accuracy": 0.5, "valid_ci95": 0.1, "checkpoint": best_path}))
    return tmp_path


def test_best_latest_and_prefix(train_dir):
    best = str(train_dir / "best" / "ckpt-3")
    prefix, info = resolve_checkpoint("best", str(train_dir))
    assert prefix == best
    assert info["step"] == 3 and info["valid_accuracy"] == 0.5
    assert info["selected_by"].endswith("best_checkpoint.json")
    assert resolve_checkpoint(f"best:{train_dir}")[0] == best
    assert resolve_checkpoint(str(train_dir / "best_checkpoint.json"))[0] == best

    prefix, info = resolve_checkpoint(str(train_dir))
    assert prefix == str(train_dir / "ckpt-5") and info["step"] == 5
    assert info["selected_by"] == f"latest in {train_dir}"
    assert "selects step 3" in info["note"] and f"--checkpoint=best:{train_dir}" in info["note"]

    assert resolve_checkpoint(str(train_dir / "ckpt-0"))[0] == str(train_dir / "ckpt-0")
    assert resolve_checkpoint(str(train_dir / "ckpt-0.index"))[0] == str(train_dir / "ckpt-0")


def test_relative_path_in_best_checkpoint_json(train_dir):
    (train_dir / "best_checkpoint.json").write_text(json.dumps({"checkpoint": "best/ckpt-3"}))
    prefix, info = resolve_checkpoint("best", str(train_dir))
    assert prefix == os.path.join(str(train_dir), "best", "ckpt-3") and info["step"] == 3


def test_path_relative_to_where_training_ran(train_dir, monkeypatch, tmp_path_factory):
    # The trainer may record the prefix relative to its working directory.
    (train_dir / "best_checkpoint.json").write_text(json.dumps(
        {"checkpoint": "runs/demo/checkpoints/best/ckpt-3", "step": 3}))
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    prefix, _ = resolve_checkpoint("best", str(train_dir))
    assert prefix == os.path.join(str(train_dir), "best", "ckpt-3")
    monkeypatch.chdir(train_dir.parent)
    (train_dir / "best_checkpoint.json").write_text(json.dumps(
        {"checkpoint": os.path.join(train_dir.name, "best", "ckpt-3")}))
    assert resolve_checkpoint("best", str(train_dir))[0] == str(train_dir / "best" / "ckpt-3")


def test_errors(train_dir, tmp_path_factory):
    empty = tmp_path_factory.mktemp("empty")
    cases = [
        (("best", None), "needs --train_checkpoint_dir"),
        (("best", str(empty)), "best_checkpoint.json does not exist"),
        ((str(empty), None), "no checkpoint in directory"),
        ((str(train_dir / "ckpt-7"), None), "ckpt-7 not found"),
        (("", None), "no checkpoint given"),
    ]
    for args, message in cases:
        with pytest.raises(CheckpointError, match=message):
            resolve_checkpoint(*args)
    (train_dir / "best_checkpoint.json").write_text(json.dumps({"checkpoint": "best/ckpt-9"}))
    with pytest.raises(CheckpointError, match="'best/ckpt-9' was not found"):
        resolve_checkpoint("best", str(train_dir))
    (train_dir / "best_checkpoint.json").write_text("{")
    with pytest.raises(CheckpointError, match="malformed JSON"):
        resolve_checkpoint("best", str(train_dir))
