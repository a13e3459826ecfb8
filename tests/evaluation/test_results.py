"""results.json / episodes.csv / results.md / results.png from made-up per-episode records."""

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from ctx_tf.data import facts
from ctx_tf.data import sampling
from ctx_tf.data.dataset_spec import DatasetSpecification, Split
from ctx_tf.evaluation import comparability
from ctx_tf.evaluation import comparison
from ctx_tf.evaluation import leaderboard
from ctx_tf.evaluation import plot
from ctx_tf.evaluation import protocol as protocol_lib
from ctx_tf.evaluation import results as results_lib
from ctx_tf.evaluation.floor import FLOOR_NAME

OFFICIAL_CONFIG = protocol_lib.config_as_dict(
    protocol_lib.evaluation_episode_config(sampling.EpisodeDescriptionConfig())[0])


def _episodes(accuracies, floor=None):
    episodes = [{"episode": i, "way": 5 + i % 3, "num_support": 20 + i, "shots_min": 1,
                 "shots_max": 4 + i % 2, "num_query": 10 * (5 + i % 3), "accuracy": a,
                 "fingerprint": f"{i:016x}", "image_digest": "0" * 16}
                for i, a in enumerate(accuracies)]
    for e, f in zip(episodes, floor if floor is not None else []):
        e["floor_accuracy"] = f
    return episodes


def _results(split="TEST", sources=("omniglot", "aircraft"), num_episodes=30, checks=None,
             image_size=224, episode_config=None, floor=False):
    """Made-up results; `checks`: `{source: spec}` whose comparability is recorded, as the
    protocol records it for sources read from records."""
    rng = np.random.RandomState(1)
    entries = {}
    for s in sources:
        accuracies = list(rng.uniform(0.3, 0.9, size=num_episodes))
        floor_acc = list(rng.uniform(0.1, 0.3, size=num_episodes)) if floor else None
        info = {}
        if floor:
            info["floor_mean"], info["floor_ci95"] = results_lib.stats.mean_and_ci95(floor_acc)
        if checks and s in checks:
            info["comparability"] = comparability.check_source(s, checks[s], split).to_json()
        entries[s] = results_lib.source_result(
            _episodes(accuracies, floor_acc), split=split, sampling="uniform", num_classes=15,
            seconds=1.0, episodes_per_second=30.0, **info)
    return {
        "format": results_lib.FORMAT,
        "model": {"name": "ctx_tf demo", "checkpoint": "/tmp/train/ckpt-5"},
        "protocol": {"split": split, "num_episodes": num_episodes, "seed": 3,
                     "image_size": image_size,
                     "episode_config": episode_config or OFFICIAL_CONFIG},
        "sources": entries,
    }


def _official(*names):
    return {n: facts.dataset_spec(n) for n in names}


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
    results = _results(num_episodes=600, checks=_official("omniglot", "aircraft"))
    paths = results_lib.write_results(str(tmp_path / "out"), results, published=("CTX",))
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["episodes.csv", "results.json", "results.md", "results.png"]
    assert set(paths) == set(names)

    loaded = results_lib.load_results(str(tmp_path / "out"))
    # What was given, plus the verdict of every source.
    want = json.loads(json.dumps(comparison.with_comparisons(results)))
    assert loaded == want
    for source in ("omniglot", "aircraft"):
        verdict = loaded["sources"][source]["comparability"]
        assert verdict["matches"] and verdict["comparable"] and verdict["withheld"] == ""
        assert verdict["published_rows"] == ["CTX"]
    # Anyone can recompute the summary from the per-episode rows.
    for entry in loaded["sources"].values():
        accuracies = [e["accuracy"] for e in entry["episodes"]]
        assert entry["mean"] == pytest.approx(np.mean(accuracies))
        assert entry["ci95"] == pytest.approx(1.96 * np.std(accuracies) / np.sqrt(600))

    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "episodes.csv").read_text())))
    assert len(rows) == 1200
    assert set(rows[0]) == set(results_lib.CSV_FIELDS)
    assert float(rows[601]["accuracy"]) == pytest.approx(
        results["sources"]["aircraft"]["episodes"][1]["accuracy"])

    md = (tmp_path / "out" / "results.md").read_text()
    assert "| Method | Avg rank | Mean | Omniglot | Aircraft |" in md
    assert "ctx_tf demo (ours)" in md and "CTX (published)" in md
    # CTX on omniglot and aircraft, best of the column.
    assert "**82.21** ± 1.00 (1)" in md and "**79.49** ± 0.89 (1)" in md
    assert leaderboard.WITHHELD_HEADING not in md

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


def _miniature_traffic_sign(images_per_class=24, rename=0):
    """traffic_sign's official class names and split, with fewer images (or renamed
    classes): what a user converting part of GTSRB gets."""
    spec = facts.dataset_spec("traffic_sign")
    names = [spec["class_names"][str(i)] for i in range(len(spec["class_names"]))]
    names[:rename] = [f"my sign {i}" for i in range(rename)]
    counts = spec["classes_per_split"]
    return DatasetSpecification(
        name="traffic_sign", classes_per_split={s: counts[s.name] for s in Split},
        images_per_class={i: images_per_class or spec["images_per_class"][str(i)]
                          for i in range(len(names))},
        class_names=dict(enumerate(names)), path="/records/traffic_sign")


def _table_part(md):
    return md.split("## Per source")[0]


@pytest.mark.parametrize("spec,summary", [
    (_miniature_traffic_sign(), "TEST: 1,032 of 39,209 images; 43 of 43 classes"),
    (_miniature_traffic_sign(images_per_class=None, rename=2),
     "TEST: 39,209 of 39,209 images; 43 of 43 classes; 2 class names differ"),
])
def test_a_miniature_named_like_an_official_source_is_not_ranked(tmp_path, spec, summary):
    results = _results(sources=("traffic_sign", "omniglot"), num_episodes=600, floor=True,
                       checks={"traffic_sign": spec, **_official("omniglot")})
    results_lib.write_results(str(tmp_path), results)
    saved = results_lib.load_results(str(tmp_path))
    verdict = saved["sources"]["traffic_sign"]["comparability"]
    assert verdict["official"] and not verdict["matches"] and not verdict["comparable"]
    assert verdict["summary"] == summary
    assert verdict["withheld"] == f"traffic_sign: not the official records ({summary})"
    assert saved["sources"]["omniglot"]["comparability"]["comparable"]
    table = _table_part((tmp_path / "results.md").read_text())
    # Our number and the floor are shown, CTX's traffic_sign cell is withheld with the reason.
    ours = results["sources"]["traffic_sign"]
    assert f"{100 * ours['mean']:.2f} ± {100 * ours['ci95']:.2f} |" in table
    assert f"{100 * ours['floor_mean']:.2f} ± {100 * ours['floor_ci95']:.2f}" in table
    ctx_row = next(line for line in table.splitlines() if line.startswith("| CTX (published)"))
    assert "| withheld |" in ctx_row and "82.65" not in table
    assert "Traffic signs †" in table
    assert f"- traffic_sign: not the official records ({summary})" in table
    # omniglot is still ranked against CTX, the floor never.
    assert "**82.21** ± 1.00 (1)" in ctx_row
    floor_row = next(line for line in table.splitlines() if line.startswith(f"| {FLOOR_NAME}"))
    assert "(" not in floor_row.split("|", 3)[3]


def test_a_source_matching_the_official_spec_is_ranked_as_before(tmp_path):
    # The real official dtd and omniglot specs (the facts the package ships), as the protocol
    # records them when it reads records converted from the full datasets.
    results = _results(sources=("omniglot", "dtd"), num_episodes=600, floor=True,
                       checks=_official("omniglot", "dtd"))
    md = results_lib.results_markdown(results)
    table, sources, withheld, published = results_lib.comparison_table(results)
    assert withheld == {} and published == ["CTX (published)"]
    ranked = {m: row for m, row in table.items() if m != FLOOR_NAME}
    ranks, average = leaderboard.rank_models(ranked, sources)
    for model in ranked:
        assert f"| {model} | {average[model]:.2f} |" in md
        for source in sources:
            assert f"({ranks[model][source]:g})" in md
    assert leaderboard.WITHHELD_HEADING not in md and "Ranks follow" in md


@pytest.mark.parametrize("change,reason", [
    (dict(num_episodes=599), "599 episodes (the published rows use 600 or more)"),
    (dict(image_size=84), "image size 84 (the published row used 224)"),
    (dict(episode_config=dict(OFFICIAL_CONFIG, num_ways=5)),
     "not the official variable-way, variable-shot episodes (num_ways=5 (official None))"),
])
def test_each_protocol_mismatch_withholds_the_comparison(tmp_path, change, reason):
    args = dict(sources=("omniglot", "dtd"), num_episodes=600, checks=_official("omniglot", "dtd"))
    args.update(change)
    results = _results(**args)
    results_lib.write_results(str(tmp_path), results)
    saved = results_lib.load_results(str(tmp_path))
    for source in ("omniglot", "dtd"):
        verdict = saved["sources"][source]["comparability"]
        assert verdict["matches"] and not verdict["comparable"]
        assert verdict["withheld"] == f"{source}: not the official protocol ({reason})"
    md = (tmp_path / "results.md").read_text()
    assert f"- omniglot, dtd: not the official protocol ({reason})" in md
    assert "Avg rank" not in md and "withheld on every source" in md


def test_sources_with_other_names_are_never_compared():
    results = _results(sources=("tiny", "omniglot"), num_episodes=600,
                       checks={"tiny": None})  # omniglot fed in without a spec
    verdicts = comparison.comparison_verdicts(results)
    assert verdicts["tiny"]["withheld"] == "tiny: not a Meta-Dataset source"
    assert not verdicts["omniglot"]["comparable"]
    assert "not checked against the official spec" in verdicts["omniglot"]["withheld"]
    png = results_lib.results_plot(results, size=(600, 400))
    assert png.startswith(b"\x89PNG")
