"""Compares finished training runs of `python -m ctx_tf.train` on their final test episodes.

    python -m ctx_tf.evaluation.runs \
        --run="ProtoNet=runs/omniglot_protonet/checkpoints" \
        --run="CTX=runs/omniglot_ctx/checkpoints" \
        --run="CTX + SimCLR episodes=runs/omniglot_ctx_simclr/checkpoints" \
        --output_dir=docs/results --name=omniglot

Each run directory holds the `final_test/results.json` the launcher writes after training
(the evaluation protocol's format: every test episode's accuracy, fingerprint and image digest,
and the raw-pixel nearest-centroid floor on the same episode). Runs tested with the same
`final_test.seed` and episode configuration on the same records see identical test episodes;
this is checked (per-episode fingerprints and image digests must agree) before any paired
difference is reported.

Writes `<name>_table.md` (accuracy +- 95% CI of every run and of the floor, paired
differences, updates and wall times) and `<name>.png` (bar chart), and prints the table.
"""

from ctx_tf.cli import quiet_start

# First, so that `python -m` captures TensorFlow's start-up logs of the imports below.
quiet_start.begin_if_main(__name__)

import os

import numpy as np
from absl import app
from absl import flags

from ctx_tf import checkpoints
from ctx_tf import cli
from ctx_tf import files
from ctx_tf.errors import UserError
from ctx_tf.evaluation import comparison
from ctx_tf.evaluation import leaderboard
from ctx_tf.evaluation import plot
from ctx_tf.evaluation import results
from ctx_tf.evaluation.floor import FLOOR_NAME
from ctx_tf.evaluation.stats import mean_and_ci95
from ctx_tf.progress import format_duration

FLAGS = flags.FLAGS

PUBLISHED = ("CTX",)  # published rows set beside the runs where comparable


class RunsError(UserError, ValueError):
    """A run directory or its results cannot be compared."""


def load_run(directory):
    """The final test of a training run directory as a flat record, checked."""
    path = os.path.join(str(directory), checkpoints.FINAL_TEST_SUBDIR, results.RESULTS_JSON)
    if not os.path.exists(path):
        raise RunsError(f"{path} does not exist: the run has not finished its final test "
                        "(python -m ctx_tf.train writes it after training)")
    try:
        loaded = results.load_results(path)
    except results.ResultsError as e:
        raise RunsError(str(e)) from None
    if len(loaded["sources"]) != 1:
        raise RunsError(f"{path}: a final test has one source, found {list(loaded['sources'])}")
    (dataset, entry), = loaded["sources"].items()
    episodes = entry["episodes"]
    if any("floor_accuracy" not in e for e in episodes):
        raise RunsError(f"{path}: episodes without floor_accuracy (not a final test)")
    model, training = loaded.get("model", {}), loaded.get("training", {})
    return dict(
        path=path, dataset=dataset, num_episodes=entry["num_episodes"],
        seed=loaded.get("protocol", {}).get("seed"),
        accuracies=[e["accuracy"] for e in episodes],
        baseline_accuracies=[e["floor_accuracy"] for e in episodes],
        identities=[(e["fingerprint"], e.get("image_digest")) for e in episodes],
        step=model.get("checkpoint_info", {}).get("step"), learner=model.get("learner"),
        num_updates=training.get("num_updates"), train_seconds=training.get("train_seconds"),
        test_seconds=entry.get("seconds"),
        setting=comparison.setting_of(loaded),
        verdict=comparison.comparison_verdicts(loaded, PUBLISHED)[dataset])


def paired(a, b):
    """`(mean, ci95)` of the per-episode difference `a - b` (same episodes, same order)."""
    return mean_and_ci95(np.asarray(a, np.float64) - np.asarray(b, np.float64))


def compare(runs):
    """Checks that the runs saw the same test episodes and computes the table's numbers.

    Args:
      runs: ordered `{name: load_run record}`; the first run is the reference of the
        paired differences.

    Returns:
      `{"dataset", "num_episodes", "floor": (mean, ci95), "rows": [dict per run]}`.
    """
    if not runs:
        raise RunsError("no runs to compare")
    names = list(runs)
    first = runs[names[0]]
    for name in names[1:]:
        record = runs[name]
        if record["dataset"] != first["dataset"]:
            raise RunsError(f"{name} was tested on {record['dataset']!r}, {names[0]} on "
                            f"{first['dataset']!r}")
        if record["num_episodes"] != first["num_episodes"]:
            raise RunsError(f"{name} has {record['num_episodes']} test episodes, {names[0]} "
                            f"{first['num_episodes']}")
        if record["identities"] != first["identities"]:
            differing = sum(a != b for a, b in zip(record["identities"], first["identities"]))
            raise RunsError(
                f"{name} ({record['path']}) and {names[0]} ({first['path']}) were not tested "
                f"on the same episodes: {differing} of "
                f"{first['num_episodes']} episodes differ (different final_test.seed, episode "
                "configuration, image size or records)")
    floor = first["baseline_accuracies"]
    rows = []
    for name in names:
        record = runs[name]
        acc = record["accuracies"]
        rows.append(dict(
            name=name, accuracy=mean_and_ci95(acc), minus_floor=paired(acc, floor),
            minus_first=None if name == names[0] else paired(acc, first["accuracies"]),
            learner=record.get("learner"), num_updates=record.get("num_updates"),
            best_step=record["step"], train_seconds=record.get("train_seconds"),
            test_seconds=record.get("test_seconds")))
    # A published row stands beside the runs only when every run's records, protocol and
    # training setting match it; otherwise the first reason is the one line saying why not.
    withheld = next((runs[n]["verdict"]["withheld"] for n in names
                     if not runs[n]["verdict"]["comparable"]), "")
    settings = {runs[n]["setting"] for n in names}
    if len(settings) > 1:
        withheld = withheld or ("the runs were trained in different settings ("
                                + ", ".join(leaderboard.setting_title(s) for s in settings)
                                + "): no published row stands beside all of them")
    rows_of_setting, _ = leaderboard.published_rows(
        PUBLISHED, settings.pop() if len(settings) == 1 else None)
    published = []
    for row in rows_of_setting:
        if first["dataset"] in row.results:
            mean, ci = row.results[first["dataset"]]
            published.append(dict(name=f"{row.name} (published)", accuracy=(mean / 100,
                                                                              ci / 100)))
    return dict(dataset=first["dataset"], num_episodes=first["num_episodes"],
                floor=mean_and_ci95(floor), rows=rows, reference=names[0],
                published=published, withheld=withheld)


def _duration(seconds):
    return "" if seconds is None else format_duration(seconds)


def _pct(pair, sign=False):
    mean, ci = pair
    return f"{100 * mean:{'+' if sign else ''}.2f} ± {100 * ci:.2f}"


def table_markdown(comparison):
    """The comparison as a Markdown table (percent points, 95% CIs)."""
    ref = comparison["reference"]
    lines = [
        f"{comparison['dataset']}, {comparison['num_episodes']} test episodes (identical for "
        "every row), accuracy in %, mean ± 95% CI; differences are paired per episode.",
        "",
        f"| model | accuracy | minus floor | minus {ref} | updates (best step) | train time "
        "| test time |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in comparison["rows"]:
        updates = "" if row["num_updates"] is None else f"{row['num_updates']} ({row['best_step']})"
        lines.append(
            f"| {row['name']} | {_pct(row['accuracy'])} | {_pct(row['minus_floor'], True)} "
            f"| {'' if row['minus_first'] is None else _pct(row['minus_first'], True)} "
            f"| {updates} | {_duration(row['train_seconds'])} "
            f"| {_duration(row['test_seconds'])} |")
    lines.append(f"| {FLOOR_NAME} | {_pct(comparison['floor'])} | | | | | |")
    for row in comparison.get("published", []):
        cell = "withheld" if comparison["withheld"] else _pct(row["accuracy"])
        lines.append(f"| {row['name']} | {cell} | | | | | |")
    if comparison.get("published") and comparison["withheld"]:
        lines += ["", f"{leaderboard.WITHHELD_HEADING}", f"- {comparison['withheld']}"]
    return "\n".join(lines) + "\n"


def chart_png(comparison, title=None):
    """PNG bytes: one bar per run plus the floor, 95% CI error bars."""
    dataset = comparison["dataset"]
    series = {row["name"]: {dataset: row["accuracy"]} for row in comparison["rows"]}
    series["raw-pixel floor"] = {dataset: comparison["floor"]}
    published = [row["name"] for row in comparison.get("published", [])]
    for row in comparison.get("published", []):
        series[row["name"]] = {dataset: row["accuracy"]}
    withheld = {dataset: comparison["withheld"]} if comparison.get("withheld") else {}
    title = title or (f"{dataset}: test accuracy over {comparison['num_episodes']} episodes, "
                      "95% CI")
    return plot.bar_chart(series, [dataset], title=title, size=(900, 500), withheld=withheld,
                          published=published)


def parse_run_flag(value):
    name, sep, directory = value.partition("=")
    if not sep or not name.strip() or not directory.strip():
        raise RunsError(f"--run={value!r}: expected NAME=RUN_DIRECTORY")
    return name.strip(), directory.strip()


def run(run_flags, output_dir, name, title=None):
    """Loads, compares and writes; returns the table text."""
    runs = {}
    for value in run_flags:
        label, directory = parse_run_flag(value)
        if label in runs:
            raise RunsError(f"--run name {label!r} given twice")
        runs[label] = load_run(directory)
    comparison = compare(runs)
    table = table_markdown(comparison)
    os.makedirs(output_dir, exist_ok=True)
    files.atomic_write(os.path.join(output_dir, f"{name}_table.md"), table)
    files.atomic_write(os.path.join(output_dir, f"{name}.png"), chart_png(comparison, title))
    return table


def _define_flags():
    flags.DEFINE_multi_string("run", [], "NAME=RUN_DIRECTORY (the --train_checkpoint_dir of a "
                              "finished ctx_tf.train run); repeatable, the first is the "
                              "reference of the paired differences.")
    flags.DEFINE_string("output_dir", None, "Where <name>_table.md and <name>.png go.")
    flags.DEFINE_string("name", "runs", "File name stem of the outputs.")
    flags.DEFINE_string("title", None, "Chart title (default: dataset and episode count).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.run or not FLAGS.output_dir:
        raise app.UsageError("--run (at least one) and --output_dir are required")
    files.check_output_dir(FLAGS.output_dir, "--output_dir")
    print(run(FLAGS.run, FLAGS.output_dir, FLAGS.name, FLAGS.title), end="")


if __name__ == "__main__":
    _define_flags()
    cli.run("evaluation.runs", main)
