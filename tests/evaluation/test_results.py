"""results.json / episodes.csv / results.md / results.png from made-up per-episode records."""

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from ctx_tf.evaluation import plot
from ctx_tf.evaluation import results as results_lib


def _episodes(accuracies):
    return [{"episode": i, "way": 5 + i % 3, "num_support": 20 + i, "shots_min": 1,
             "shots_max": 4 + i % 2, "num_query": 10 * (5 + i % 3), "accuracy": a,
             "fingerprint": f"{i:016x}", "image_digest": "0" * 16}
            for i, a in enumerate(accuracies)]


def _results(split="TEST", sources=("omniglot", "aircraft")):
    rng = np.random.RandomState(1)
    return {
        "format": results_lib.FORMAT,
        "model": {"name": "ctx_tf demo", "checkpoint": "/tmp/train/ckpt-5"},
        "protocol": {"split": split, "num_episodes": 30, "seed": 3, "official": False},
        "sources": {s: results_lib.source_result(
            _episodes(list(rng.uniform(0.3, 0.9, size=30))), split=split, sampling="uniform",
            num_classes=15, seconds=1.0, episodes_per_second=30.0) for s in sources},
    }


def test_source_result_summarizes_the_episodes():
    entry = results_lib.source_result(_episodes([0.5, 0.7, 0.9, 0.9]), split="TEST")
    assert entry["mean"] == pytest.approx(0.75)
    assert entry["ci95"] == pytest.approx(1.96 * np.std([0.5, 0.7, 0.9, 0.9]) / 2)
    assert entry["num_episodes"] == 4 and entry["split"] == "TEST"
    assert list(entry["episodes"][0]) == list(results_lib.EPISODE_FIELDS) + ["image_digest"]
    with pytest.raises(ValueError, match="lacks"):
        results_lib.source_result([{"accuracy": 0.5}])


@pytest.mark.compat
def test_write_results_writes_all_outputs_atomically(tmp_path):
    results = _results()
    paths = results_lib.write_results(str(tmp_path / "out"), results, published=("CTX",))
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["episodes.csv", "results.json", "results.md", "results.png"]
    assert set(paths) == set(names)

    loaded = results_lib.load_results(str(tmp_path / "out"))
    assert loaded == json.loads(json.dumps(results))
    # Anyone can recompute the summary from the per-episode rows.
    for entry in loaded["sources"].values():
        accuracies = [e["accuracy"] for e in entry["episodes"]]
        assert entry["mean"] == pytest.approx(np.mean(accuracies))
        assert entry["ci95"] == pytest.approx(1.96 * np.std(accuracies) / np.sqrt(30))

    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "episodes.csv").read_text())))
    assert len(rows) == 60
    assert set(rows[0]) == set(results_lib.CSV_FIELDS)
    assert float(rows[31]["accuracy"]) == pytest.approx(
        results["sources"]["aircraft"]["episodes"][1]["accuracy"])

    md = (tmp_path / "out" / "results.md").read_text()
    assert "| Method | Avg rank | Mean | Omniglot | Aircraft |" in md
    assert "ctx_tf demo (ours)" in md and "CTX (published)" in md
    # CTX on omniglot and aircraft, best of the column.
    assert "**82.21** ± 1.00 (1)" in md and "**79.49** ± 0.89 (1)" in md
    assert "differs from the official protocol" in md

    image = Image.open(tmp_path / "out" / "results.png")
    image.load()
    assert image.format == "PNG" and image.size == plot.DEFAULT_SIZE


def test_validation_results_are_not_ranked_against_published_test_numbers(tmp_path):
    md = results_lib.results_markdown(_results(split="VALID"))
    assert "Avg rank" not in md and "published" not in md.split("## Per source")[0].split(
        "Not ranked")[0]
    assert "Not ranked" in md


def test_markdown_lists_a_paired_comparison():
    results = _results()
    results["comparison"] = {"against": "/old/results.json", "paired_difference": {
        "omniglot": {"mean": 0.02, "ci95": 0.01, "num_episodes": 30, "mean_a": 0.6,
                     "mean_b": 0.58, "significant": True, "image_mismatches": 0}}}
    md = results_lib.results_markdown(results)
    assert "| omniglot | 60.00 | 58.00 | +2.00 ± 1.00 | yes |" in md


def test_load_results_errors(tmp_path):
    with pytest.raises(results_lib.ResultsError, match="does not exist"):
        results_lib.load_results(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(results_lib.ResultsError, match="malformed"):
        results_lib.load_results(str(bad))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(results_lib.ResultsError, match="not a ctx_tf results file"):
        results_lib.load_results(str(other))


def test_bar_chart_size_and_content():
    png = plot.bar_chart({"ours": {"omniglot": (0.8, 0.01), "aircraft": (0.5, 0.02)},
                          "CTX": {"omniglot": (0.82, 0.01)}},
                         ["omniglot", "aircraft"], title="t", size=(400, 300))
    image = Image.open(io.BytesIO(png))
    assert image.size == (400, 300)
    pixels = np.asarray(image.convert("RGB"))
    # Both series colours are drawn.
    for color in plot._COLORS[:2]:
        assert np.any(np.all(pixels == color, axis=-1)), color
    with pytest.raises(ValueError, match="fractions"):
        plot.bar_chart({"ours": {"omniglot": (80.0, 1.0)}}, ["omniglot"])
    with pytest.raises(ValueError):
        plot.bar_chart({}, ["omniglot"])
