"""`ctx_tf.evaluation.runs`: comparing finished training runs on their shared test episodes."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from ctx_tf.evaluation import runs


def write_run(directory, accuracies, floor, dataset="omniglot", **extra):
    os.makedirs(directory, exist_ok=True)
    record = dict(dataset=dataset, num_episodes=len(accuracies), step=300, mean=float(np.mean(accuracies)),
                  ci95=0.0, baseline_mean=float(np.mean(floor)), baseline_ci95=0.0,
                  accuracies=[float(a) for a in accuracies],
                  baseline_accuracies=[float(a) for a in floor], learner="X", num_updates=1200,
                  train_seconds=1500.0, test_seconds=240.0)
    record.update(extra)
    with open(os.path.join(directory, runs.TEST_RESULTS), "w") as f:
        json.dump(record, f)
    return str(directory)


@pytest.fixture
def episodes():
    rng = np.random.default_rng()
    n = int(rng.integers(40, 80))
    floor = rng.uniform(0.2, 0.5, n)
    a = np.clip(floor + rng.uniform(0.2, 0.4, n), 0, 1)
    b = np.clip(a + rng.normal(0.02, 0.05, n), 0, 1)
    return floor, a, b


def ci95(x):
    x = np.asarray(x, np.float64)
    return 1.96 * x.std() / math.sqrt(x.size)


def test_compare_matches_a_numpy_reference(tmp_path, episodes):
    floor, a, b = episodes
    loaded = {"A": runs.load_run(write_run(tmp_path / "a", a, floor)),
              "B": runs.load_run(write_run(tmp_path / "b", b, floor))}
    result = runs.compare(loaded)
    assert result["num_episodes"] == len(floor) and result["reference"] == "A"
    np.testing.assert_allclose(result["floor"], (floor.mean(), ci95(floor)), rtol=1e-12)
    row_a, row_b = result["rows"]
    np.testing.assert_allclose(row_a["accuracy"], (a.mean(), ci95(a)), rtol=1e-12)
    np.testing.assert_allclose(row_b["minus_floor"], ((b - floor).mean(), ci95(b - floor)),
                               rtol=1e-12)
    np.testing.assert_allclose(row_b["minus_first"], ((b - a).mean(), ci95(b - a)), rtol=1e-12)
    assert row_a["minus_first"] is None
    # Pairing removes the shared episode difficulty: the paired CI is the smaller one.
    assert row_b["minus_first"][1] < row_b["accuracy"][1]


def test_runs_on_different_episodes_are_refused(tmp_path, episodes):
    floor, a, b = episodes
    other_floor = floor.copy()
    other_floor[3] += 0.01
    loaded = {"A": runs.load_run(write_run(tmp_path / "a", a, floor)),
              "B": runs.load_run(write_run(tmp_path / "b", b, other_floor))}
    with pytest.raises(runs.RunsError, match="not tested on the same episodes.*1 of"):
        runs.compare(loaded)
    loaded["B"] = runs.load_run(write_run(tmp_path / "c", b, floor, dataset="quickdraw"))
    with pytest.raises(runs.RunsError, match="quickdraw"):
        runs.compare(loaded)


def test_unfinished_or_old_runs_are_named(tmp_path, episodes):
    floor, a, _ = episodes
    with pytest.raises(runs.RunsError, match="not finished its final test"):
        runs.load_run(tmp_path / "nothing")
    old = write_run(tmp_path / "old", a, floor)
    record = json.load(open(os.path.join(old, runs.TEST_RESULTS)))
    del record["accuracies"]
    json.dump(record, open(os.path.join(old, runs.TEST_RESULTS), "w"))
    with pytest.raises(runs.RunsError, match=r"old.*lacks \['accuracies'\]"):
        runs.load_run(old)
    with pytest.raises(runs.RunsError, match="NAME=RUN_DIRECTORY"):
        runs.parse_run_flag("no_name_here")


def test_command_line_writes_table_and_chart(tmp_path, episodes):
    floor, a, b = episodes
    pa, pb = write_run(tmp_path / "a", a, floor), write_run(tmp_path / "b", b, floor)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "ctx_tf.evaluation.runs", f"--run=ProtoNet={pa}",
         f"--run=CTX + SimCLR={pb}", f"--output_dir={out}", "--name=omni"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = (out / "omni_table.md").read_text()
    assert table == proc.stdout
    assert f"| CTX + SimCLR | {100 * b.mean():.2f} ± {100 * ci95(b):.2f} |" in table
    assert f"| {100 * (b - a).mean():+.2f} ± {100 * ci95(b - a):.2f} |" in table
    assert f"{runs.FLOOR_NAME} | {100 * floor.mean():.2f}" in table
    assert "| 1200 (300) | 25.0 min | 4.0 min |" in table
    png = (out / "omni.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 2000
    proc = subprocess.run(
        [sys.executable, "-m", "ctx_tf.evaluation.runs", f"--run=A={pa}",
         f"--run=B={tmp_path / 'missing'}", f"--output_dir={out}"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "missing" in proc.stderr and "final test" in proc.stderr
