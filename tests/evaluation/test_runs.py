"""`ctx_tf.evaluation.runs`: comparing finished training runs on their shared test episodes."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from ctx_tf import checkpoints
from ctx_tf.evaluation import results as results_lib
from ctx_tf.evaluation import runs


def write_run(directory, accuracies, floor, dataset="omniglot", **extra):
    """A run directory holding a final test in the results.json format."""
    episodes = [dict(episode=i, way=5, num_support=10, shots_min=2, shots_max=2, num_query=10,
                     accuracy=float(acc), floor_accuracy=float(f), fingerprint=f"{i:016x}",
                     image_digest=("other" if i == extra.get("changed") else "d") + str(i))
                for i, (acc, f) in enumerate(zip(accuracies, floor))]
    results = {"format": results_lib.FORMAT, "protocol": {"split": "TEST", "seed": 5678},
               "model": {"learner": "X", "checkpoint_info": {"step": 300},
                         **({"training_setting": extra["setting"]} if "setting" in extra
                            else {})},
               "training": {"num_updates": 1200, "train_seconds": 1500.0},
               "sources": {dataset: results_lib.source_result(episodes, seconds=240.0)}}
    os.makedirs(os.path.join(directory, checkpoints.FINAL_TEST_SUBDIR), exist_ok=True)
    path = os.path.join(directory, checkpoints.FINAL_TEST_SUBDIR, results_lib.RESULTS_JSON)
    with open(path, "w") as f:
        json.dump(results, f)
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


def test_published_rows_stand_beside_runs_of_their_training_setting_only(tmp_path, episodes):
    floor, a, b = episodes
    imagenet = runs.load_run(write_run(tmp_path / "a", a, floor))  # no setting: ImageNet only
    every = runs.load_run(write_run(tmp_path / "b", b, floor, setting="all"))
    assert [row["name"] for row in runs.compare({"A": imagenet})["published"]] == [
        "CTX (published)"]
    assert runs.compare({"A": imagenet, "B": every})["published"] == []
    assert runs.compare({"B": every})["published"] == []


def test_runs_on_different_episodes_are_refused(tmp_path, episodes):
    floor, a, b = episodes
    # Episode 3 has other images (its image digest differs).
    loaded = {"A": runs.load_run(write_run(tmp_path / "a", a, floor)),
              "B": runs.load_run(write_run(tmp_path / "b", b, floor, changed=3))}
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
    path = os.path.join(old, checkpoints.FINAL_TEST_SUBDIR, results_lib.RESULTS_JSON)
    record = json.load(open(path))
    for e in record["sources"]["omniglot"]["episodes"]:
        del e["floor_accuracy"]
    json.dump(record, open(path, "w"))
    with pytest.raises(runs.RunsError, match=r"old.*without floor_accuracy"):
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
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr[-2000:]  # quiet start
    table = (out / "omni_table.md").read_text()
    assert table == proc.stdout
    assert f"| CTX + SimCLR | {100 * b.mean():.2f} ± {100 * ci95(b):.2f} |" in table
    assert f"| {100 * (b - a).mean():+.2f} ± {100 * ci95(b - a):.2f} |" in table
    assert f"{runs.FLOOR_NAME} | {100 * floor.mean():.2f}" in table
    assert "| 1200 (300) | 0:25:00 | 0:04:00 |" in table
    png = (out / "omni.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 2000
    proc = subprocess.run(
        [sys.executable, "-m", "ctx_tf.evaluation.runs", f"--run=A={pa}",
         f"--run=B={tmp_path / 'missing'}", f"--output_dir={out}"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.splitlines()[-1]
    assert last.startswith("ctx_tf.evaluation.runs: error: ")
    assert "missing" in last and "final test" in last


def test_published_row_beside_runs_only_when_comparable(tmp_path, episodes):
    from ctx_tf.data import facts
    from ctx_tf.evaluation import comparability

    floor, a, _ = episodes
    # A run on a miniature named omniglot: the published CTX cell is withheld, with the reason.
    loaded = {"A": runs.load_run(write_run(tmp_path / "a", a, floor))}
    table = runs.table_markdown(runs.compare(loaded))
    assert "| CTX (published) | withheld |" in table
    assert "- omniglot: not the official records (not checked against the official spec" in table
    # The official omniglot records under the official protocol: CTX's number is shown.
    directory = write_run(tmp_path / "b", list(a) * 20, list(floor) * 20)
    path = os.path.join(directory, checkpoints.FINAL_TEST_SUBDIR, results_lib.RESULTS_JSON)
    record = json.load(open(path))
    record["protocol"].update(num_episodes=600, image_size=224, episode_config=dict(
        comparability._official_episode_parameters(), num_support=None))
    record["sources"]["omniglot"]["comparability"] = comparability.check_source(
        "omniglot", facts.dataset_spec("omniglot")).to_json()
    json.dump(record, open(path, "w"))
    table = runs.table_markdown(runs.compare({"B": runs.load_run(directory)}))
    assert "| CTX (published) | 82.21 ± 1.00 |" in table and "withheld" not in table
