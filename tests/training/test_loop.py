"""Trainer: LR schedule, gradient normalization, checkpoints, resume, validation, errors."""

import json
import os

import gin
import numpy as np
import pytest
import tensorflow as tf

from ctx_tf import checkpoints
from ctx_tf import learners
from ctx_tf.training import episodes as episodes_lib
from ctx_tf.training import loop
from ctx_tf.training import step as step_lib
from ctx_tf.training.schedule import LearningRateSchedule
from ctx_tf.evaluation import curves
from tests.conftest import REPO_ROOT
from tests.training.helpers import (IMAGE_SIZE, episode_gradients, episode_stream,
                                    evaluate_episode, make_episode, make_trainer, toy_learner)

# ----------------------------------------------------------------------------- pure maths


@pytest.mark.compat
def test_learning_rate_schedule_is_staircase_exponential():
    schedule = LearningRateSchedule(6e-4, True, 2000, 0.915193802145601)
    rates = [schedule.at(s) for s in (0, 1999, 2000, 3999, 4000, 100000)]
    expected = [6e-4, 6e-4, 6e-4 * 0.915193802145601, 6e-4 * 0.915193802145601,
                6e-4 * 0.915193802145601 ** 2, 6e-4 * 0.915193802145601 ** 50]
    np.testing.assert_allclose(rates, expected, rtol=1e-12)
    assert abs(rates[-1] - 7.1e-6) < 1e-7  # docs/protocol.md §7.4: final CTX lr ~ 7.1e-6
    # The optimizer's schedule is the same decay (float32).
    keras_schedule = schedule.for_optimizer()
    np.testing.assert_allclose([float(keras_schedule(s)) for s in (0, 1999, 2000, 100000)],
                               [rates[0], rates[1], rates[2], rates[5]], rtol=1e-6)
    assert LearningRateSchedule(1e-4, False, 10, 0.5).at(12345) == 1e-4
    assert LearningRateSchedule(1e-4, False, 10, 0.5).for_optimizer() == 1e-4


@pytest.mark.compat
def test_gradient_normalization_uses_the_clamped_global_norm():
    grads = [tf.constant([3.0, 0.0]), tf.constant([[4.0]])]
    normalized, norm = step_lib.normalize_gradients(grads)
    assert float(norm) == pytest.approx(5.0)
    np.testing.assert_allclose(normalized[0].numpy(), [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(normalized[1].numpy(), [[0.8]], rtol=1e-6)
    tiny = [tf.constant([1e-4])]
    normalized, norm = step_lib.normalize_gradients(tiny)
    assert float(norm) == pytest.approx(np.sqrt(1e-5), rel=1e-6)  # clamp: sqrt(max(., 1e-5))
    np.testing.assert_allclose(normalized[0].numpy(), [1e-4 / np.sqrt(1e-5)], rtol=1e-5)


def test_benchmark_parses_official_names(clean_gin):
    gin.bind_parameter("benchmark.train_datasets", "ilsvrc_2012, omniglot")
    gin.bind_parameter("benchmark.eval_datasets", "ilsvrc_2012")
    assert episodes_lib.benchmark() == (["ilsvrc_2012", "omniglot"], ["ilsvrc_2012"])


# ----------------------------------------------------------------------------- updates


def _adam(weights, gradients, lrs, beta1=0.9, beta2=0.999, eps=1e-7):
    """Keras Adam, by hand: bias-corrected step size, epsilon outside the correction."""
    m = [np.zeros_like(w) for w in weights]
    v = [np.zeros_like(w) for w in weights]
    weights = [w.astype(np.float64) for w in weights]
    for t, (grads, lr) in enumerate(zip(gradients, lrs), start=1):
        alpha = lr * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        for i, g in enumerate(grads):
            m[i] = m[i] + (g - m[i]) * (1 - beta1)
            v[i] = v[i] + (g * g - v[i]) * (1 - beta2)
            weights[i] = weights[i] - m[i] * alpha / (np.sqrt(v[i]) + eps)
    return weights


def test_updates_match_hand_computed_normalized_adam_and_decay(tmp_path):
    t = make_trainer(tmp_path, learning_rate=1e-2, decay_every=1, decay_rate=0.5)
    rng = np.random.RandomState(3)
    episodes = [make_episode(rng) for _ in range(2)]
    t.updater.ensure_variables(episodes[0])
    w0 = [v.numpy() for v in t.learner.trainable_variables]
    raw, lrs = [], []
    for step, episode in enumerate(episodes):
        loss, grads = episode_gradients(t, episode)
        out = t.updater.train_on_episode(episode)
        assert out["loss"] == pytest.approx(loss, rel=1e-5)
        norm = np.sqrt(max(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads), 1e-5))
        assert out["grad_norm"] == pytest.approx(norm, rel=1e-4)
        raw.append([g / norm for g in grads])
        lrs.append(1e-2 * 0.5 ** step)
        assert out["learning_rate"] == pytest.approx(lrs[-1])
    expected = _adam(w0, raw, lrs)
    for want, var in zip(expected, t.learner.trainable_variables):
        np.testing.assert_allclose(var.numpy(), want, rtol=1e-4, atol=2e-6, err_msg=var.name)
    assert int(t.updater.step.numpy()) == 2 and int(t.updater.optimizer.iterations.numpy()) == 2
    # The learner's own loss (mean CE + L2) equals the trainer's split forward pass.
    rng = np.random.RandomState(4)
    episode = make_episode(rng, way=4, shot=3, query=3)
    own = t.learner(episode, training=False)
    accuracy, loss = evaluate_episode(t, episode)
    assert float(own.loss) == pytest.approx(loss, rel=1e-5)
    assert float(own.accuracy) == pytest.approx(accuracy)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    served = []

    def poisoned(seed):
        for episode in episode_stream(seed):
            served.append(1)
            if len(served) == 3:  # the third update of the run
                episode = episode._replace(
                    support_images=episode.support_images * float("nan"))
            yield episode

    t = make_trainer(tmp_path, train_episodes_fn=poisoned, checkpoint_every=2, validate_every=10)
    with pytest.raises(loop.TrainerError, match=r"non-finite loss .* at update 3;.*ckpt-2"):
        t.train()
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith("ckpt-2")
    best = json.loads((tmp_path / "ckpt" / "best_checkpoint.json").read_text())
    assert best["step"] == 0 and best["checkpoint"].endswith(os.path.join("best", "ckpt-0"))


# ----------------------------------------------------------------------------- checkpoints

KILL_SCRIPT = """
import os, pathlib, signal, sys
sys.path.insert(0, sys.argv[1])
from ctx_tf.seeds import derive_seed
from tests.conftest import REPO_ROOT
from tests.training.helpers import episode_stream, make_trainer

def killed_after_one(seed):
    stream = episode_stream(seed)
    yield next(stream)
    if seed == derive_seed(7, 4):
        os.kill(os.getpid(), signal.SIGKILL)  # a hard kill during update 6, after ckpt-4
    yield from stream

make_trainer(pathlib.Path(sys.argv[2]), train_episodes_fn=killed_after_one).train()
"""

RESUME_KW = dict(num_updates=6, checkpoint_every=2, validate_every=3)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("uninterrupted")
    t = make_trainer(tmp, **RESUME_KW)
    best = t.train()
    return tmp, t, best


def _state(t):
    return dict(step=int(t.updater.step.numpy()),
                iterations=int(t.updater.optimizer.iterations.numpy()),
                weights=[v.numpy() for v in t.learner.variables],
                slots=[v.numpy() for v in t.updater.optimizer.variables()])


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_state(tmp_path, uninterrupted):
    import subprocess
    import sys

    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT)
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(script), str(REPO_ROOT), str(run_dir)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert tf.train.latest_checkpoint(str(run_dir / "ckpt")).endswith("ckpt-4")

    messages = []
    resumed = make_trainer(run_dir, print_fn=messages.append, **RESUME_KW)
    best = resumed.train()
    assert any("Resumed from" in m and "ckpt-4" in m for m in messages), messages
    _, reference, reference_best = uninterrupted
    want, got = _state(reference), _state(resumed)
    assert got["step"] == want["step"] == 6 and got["iterations"] == want["iterations"] == 6
    assert (resumed.options.schedule.at(6) == reference.options.schedule.at(6)
            == 1e-3 * 0.5 ** 3)
    # Same episodes (one stream per checkpoint period, seeded by its first step), same
    # optimizer state: the resumed run reproduces the uninterrupted one.
    for a, b in zip(want["weights"] + want["slots"], got["weights"] + got["slots"]):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
    assert best["step"] == reference_best["step"]
    assert best["valid_accuracy"] == pytest.approx(reference_best["valid_accuracy"])


def test_summaries_hold_the_scalars_and_one_attention_image_per_validation(uninterrupted):
    tmp, t, _ = uninterrupted
    scalars = curves.read_scalars(tmp / "summaries")
    steps, losses = scalars[curves.TRAIN_LOSS]
    assert list(steps) == [1, 2, 4, 6] and np.all(np.isfinite(losses))
    assert list(scalars[curves.VALID_MEAN][0]) == [0, 3, 6]
    assert np.all((scalars[curves.VALID_MEAN][1] >= 0) & (scalars[curves.VALID_MEAN][1] <= 1))
    assert list(scalars[curves.LEARNING_RATE][1]) == pytest.approx(
        [t.options.schedule.at(s - 1) for s in (1, 2, 4, 6)])
    images = {}
    for path in curves.event_files(tmp / "summaries"):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == "valid/attention":
                    assert value.metadata.plugin_data.plugin_name == "images"
                    images[event.step] = tf.make_ndarray(value.tensor)
    assert sorted(images) == [0, 3, 6]
    for encoded in images.values():
        width, height, png = int(encoded[0]), int(encoded[1]), encoded[2]
        decoded = tf.io.decode_png(png).numpy()
        assert decoded.shape == (height, width, 3) and width >= 600 and height >= 200
        assert decoded.std() > 10  # a drawn figure, not a blank canvas


def test_checkpoint_layout_and_restore_learner(uninterrupted):
    tmp, t, best = uninterrupted
    ckpt_dir = tmp / "ckpt"
    record = json.loads((ckpt_dir / checkpoints.BEST_CHECKPOINT_JSON).read_text())
    assert set(record) == {"step", "valid_accuracy", "valid_ci95", "checkpoint"}
    assert record == best
    assert tf.io.gfile.exists(record["checkpoint"] + ".index")
    assert (ckpt_dir / checkpoints.OPERATIVE_CONFIG).exists()
    assert tf.train.latest_checkpoint(str(ckpt_dir)).endswith("ckpt-6")
    assert not [f for f in os.listdir(ckpt_dir) if f.startswith(".tmp")]
    assert os.listdir(tmp / "summaries")  # event files

    fresh = toy_learner()
    learners.build_learner_variables(fresh, IMAGE_SIZE)
    checkpoints.restore_learner(fresh, str(ckpt_dir / "ckpt-6"))
    for a, b in zip(t.learner.variables, fresh.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    other = toy_learner(dim=8)
    learners.build_learner_variables(other, IMAGE_SIZE)
    with pytest.raises(checkpoints.CheckpointError, match="shape mismatch"):
        checkpoints.restore_learner(other, str(ckpt_dir))
    with pytest.raises(checkpoints.CheckpointError, match="not found"):
        checkpoints.restore_learner(fresh, str(ckpt_dir / "ckpt-99"))


def test_checkpoint_to_restore_initializes_the_backbone_only(tmp_path, uninterrupted):
    source_dir, source, _ = uninterrupted
    t = make_trainer(tmp_path, num_updates=0,
                     checkpoint_to_restore=str(source_dir / "ckpt" / "ckpt-6"))
    t.updater.ensure_variables(make_episode(np.random.RandomState(0)))
    assert not t.checkpointing.restore_or_initialize()  # nothing to resume: initialized
    for a, b in zip(source.learner.backbone.variables, t.learner.backbone.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(source.learner.head.variables, t.learner.head.variables):
        assert not np.array_equal(a.numpy(), b.numpy())
    assert int(t.updater.step.numpy()) == 0


# ----------------------------------------------------------------------------- final test


def test_validation_and_final_test_show_progress_and_a_killed_final_test_resumes(
        tmp_path, monkeypatch):
    from ctx_tf.evaluation import evaluator as evaluator_lib
    from ctx_tf.training import final_test

    messages = []
    t = make_trainer(tmp_path, num_updates=0, print_fn=messages.append)
    best = t.train()  # the validation of step 0 only
    assert any(m.startswith("[episodes] 3/3 episodes") and " ETA " in m for m in messages)
    assert (tmp_path / "ckpt" / "valid" / "results.json").exists()
    assert not (tmp_path / "ckpt" / "valid" / evaluator_lib.JOURNAL_NAME).exists()

    append = evaluator_lib.Journal.append

    def append_then_die(self, source, record, seconds):
        append(self, source, record, seconds)
        if len(self.done[source]) == 2:
            raise KeyboardInterrupt  # killed after two journaled episodes

    monkeypatch.setattr(evaluator_lib.Journal, "append", append_then_die)
    with pytest.raises(KeyboardInterrupt):
        final_test.run_final_test(t, best, num_episodes=5, seed=3)
    output = tmp_path / "ckpt" / "final_test"
    journal = output / evaluator_lib.JOURNAL_NAME
    assert len(journal.read_text().splitlines()) == 3 and not (output / "results.json").exists()
    monkeypatch.undo()

    messages.clear()
    results = final_test.run_final_test(t, best, num_episodes=5, seed=3)
    assert any(m.startswith("resuming: 2 episode(s) already evaluated") for m in messages)
    assert any(m.startswith("[episodes] 5/5 episodes") and " ETA " in m for m in messages)
    assert not journal.exists() and (output / "results.json").exists()
    # The same episodes and accuracies as a final test never interrupted.
    whole = t.validation.run(t.predict_fn, "test", num_episodes=5, seed=3, floor=True)
    ours, want = (r["sources"]["episodes"]["episodes"] for r in (results, whole))
    assert [(e["fingerprint"], e["accuracy"], e["floor_accuracy"]) for e in ours] == [
        (e["fingerprint"], e["accuracy"], e["floor_accuracy"]) for e in want]
