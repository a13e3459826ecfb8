"""Per-episode accuracy, mean and CI (ddof=0), paired differences: hand-computed values."""

import math

import numpy as np
import pytest

from ctx_tf.evaluation import stats


def test_episode_accuracy_by_hand():
    logits = [[2.0, 1.0, 0.0],   # predicts 0
              [0.0, 3.0, 1.0],   # predicts 1
              [5.0, 5.0, 0.0],   # tie -> lowest index 0
              [0.0, 0.0, 1.0]]   # predicts 2
    assert stats.episode_accuracy(logits, [0, 1, 1, 0]) == 0.5
    assert stats.episode_accuracy(logits, [0, 1, 0, 2]) == 1.0
    assert stats.episode_accuracy([[1.0, 0.0]], [1]) == 0.0


@pytest.mark.parametrize("logits,labels,match", [
    ([1.0, 2.0], [0], "num_query, num_ways"),
    ([[1.0, 2.0]], [0, 1], "labels must be"),
    (np.zeros([0, 3]), np.zeros([0], int), "without query"),
    ([[1.0, 2.0]], [2], "labels must be in"),
])
def test_episode_accuracy_rejects_bad_inputs(logits, labels, match):
    with pytest.raises(ValueError, match=match):
        stats.episode_accuracy(logits, labels)


@pytest.mark.compat
def test_mean_and_ci95_by_hand():
    # Values 0.5, 0.7, 0.9, 0.9: mean 0.75; population variance
    # ((-.25)^2 + (-.05)^2 + .15^2 + .15^2) / 4 = (0.0625 + 0.0025 + 0.0225 + 0.0225) / 4
    # = 0.0275; std = 0.165831...; ci = 1.96 * std / sqrt(4) = 0.162514...
    mean, ci = stats.mean_and_ci95([0.5, 0.7, 0.9, 0.9])
    assert mean == pytest.approx(0.75)
    assert ci == pytest.approx(1.96 * math.sqrt(0.0275) / 2.0)
    # ddof=0, not 1.
    assert ci != pytest.approx(1.96 * np.std([0.5, 0.7, 0.9, 0.9], ddof=1) / 2.0)


def test_ci95_of_600_episodes():
    rng = np.random.RandomState(0)
    values = rng.uniform(size=600)
    mean, ci = stats.mean_and_ci95(values)
    assert mean == pytest.approx(values.sum() / 600)
    assert ci == pytest.approx(1.96 * values.std() / math.sqrt(600))
    assert stats.mean_and_ci95([0.3] * 600) == (pytest.approx(0.3), pytest.approx(0.0, abs=1e-12))
    with pytest.raises(ValueError):
        stats.mean_and_ci95([])
    with pytest.raises(ValueError):
        stats.mean_and_ci95([0.5, float("nan")])


def test_std_from_ci95_inverts_the_ci():
    values = np.linspace(0, 1, 600)
    _, ci = stats.mean_and_ci95(values)
    assert stats.std_from_ci95(ci, 600) == pytest.approx(values.std())


def _results(accuracies, fingerprints=None, source="omniglot"):
    fingerprints = fingerprints or [f"f{i}" for i in range(len(accuracies))]
    return {"sources": {source: {"episodes": [
        {"episode": i, "accuracy": a, "fingerprint": f}
        for i, (a, f) in enumerate(zip(accuracies, fingerprints))]}}}


def test_paired_difference_by_hand():
    a = _results([0.6, 0.8, 1.0, 0.4])
    b = _results([0.5, 0.8, 0.7, 0.4])
    d = stats.paired_difference(a, b)["omniglot"]
    # differences 0.1, 0.0, 0.3, 0.0: mean 0.1, population variance
    # (0 + 0.01 + 0.04 + 0.01) / 4 = 0.015
    assert d["mean"] == pytest.approx(0.1)
    assert d["ci95"] == pytest.approx(1.96 * math.sqrt(0.015) / 2.0)
    assert d["num_episodes"] == 4
    assert d["mean_a"] == pytest.approx(0.7) and d["mean_b"] == pytest.approx(0.6)
    assert d["significant"] is False  # 0.1 < 0.12
    assert d["image_mismatches"] == 0


def test_paired_difference_requires_identical_episodes():
    with pytest.raises(ValueError, match="episode 1 differs"):
        stats.paired_difference(_results([0.5, 0.5], ["x", "y"]), _results([0.5, 0.5], ["x", "z"]))
    with pytest.raises(ValueError, match="2 vs 3 episodes"):
        stats.paired_difference(_results([0.5, 0.5]), _results([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="no source in common"):
        stats.paired_difference(_results([0.5]), _results([0.5], source="aircraft"))
