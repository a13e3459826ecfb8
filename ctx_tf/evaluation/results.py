"""Evaluation results: the `results.json` layout, and the files written beside it.

`results.json` (format `ctx_tf.evaluation/1`) holds everything needed to recompute every
number: per source the per-episode way, support size, per-class shot range, query count,
accuracy and a fingerprint of the episode (see `protocol.episode_fingerprint`), and the
summary `mean` / `ci95` (fractions in [0, 1]). `episodes.csv` has the per-episode rows of all
sources; `results.md` the leaderboard-layout table; `results.png` the bar chart.

Every file is written to a temporary name and renamed into place, on any `tf.io.gfile`
filesystem, so a reader never sees a half-written file.
"""

import csv
import io
import json
import posixpath

import tensorflow as tf

from ctx_tf import files
from ctx_tf.errors import UserError
from ctx_tf.evaluation import leaderboard
from ctx_tf.evaluation import plot
from ctx_tf.evaluation import stats

FORMAT = "ctx_tf.evaluation/1"
CI95_FORMULA = "1.96 * std(episode accuracies, ddof=0) / sqrt(num_episodes)"
EPISODE_FIELDS = ("episode", "way", "num_support", "shots_min", "shots_max", "num_query",
                  "accuracy", "fingerprint")
CSV_FIELDS = ("source",) + EPISODE_FIELDS

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
RESULTS_PNG = "results.png"
EPISODES_CSV = "episodes.csv"


class ResultsError(UserError, ValueError):
    """A results file that is missing, malformed or of another format."""


def source_result(episodes, **info):
    """The `results["sources"][name]` entry: summary statistics, `info`, per-episode rows."""
    if not episodes:
        raise ValueError("a source result needs at least one episode")
    for e in episodes:
        missing = [f for f in EPISODE_FIELDS if f not in e]
        if missing:
            raise ValueError(f"episode record {e} lacks {missing}")
    mean, ci95 = stats.mean_and_ci95([e["accuracy"] for e in episodes])
    entry = {"mean": mean, "ci95": ci95, "num_episodes": len(episodes)}
    entry.update(info)
    # Protocol fields first, then any extra ones (e.g. image_digest).
    entry["episodes"] = [dict({f: e[f] for f in EPISODE_FIELDS}, **e) for e in episodes]
    return entry


def _join(directory, name):
    return posixpath.join(directory, name) if "://" in directory else tf.io.gfile.join(
        directory, name)


def load_results(path):
    """Reads and checks a `results.json` (a file, or a directory containing one)."""
    path = str(path)
    if tf.io.gfile.isdir(path):
        path = _join(path, RESULTS_JSON)
    if not tf.io.gfile.exists(path):
        raise ResultsError(f"results file {path} does not exist")
    with tf.io.gfile.GFile(path, "r") as f:
        text = f.read()
    try:
        results = json.loads(text)
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}: malformed JSON: {e}") from None
    if not isinstance(results, dict) or results.get("format") != FORMAT:
        raise ResultsError(f"{path}: not a ctx_tf results file (expected format {FORMAT!r}, "
                           f"got {results.get('format') if isinstance(results, dict) else None!r})")
    for name, entry in results.get("sources", {}).items():
        if "episodes" not in entry:
            raise ResultsError(f"{path}: source {name!r} has no per-episode records")
    return results


def episodes_csv(results):
    """CSV text with one row per episode of every source."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for source, entry in results["sources"].items():
        for e in entry["episodes"]:
            row = {"source": source}
            row.update({f: e[f] for f in EPISODE_FIELDS})
            writer.writerow(row)
    return buffer.getvalue()


def _model_name(results):
    return results.get("model", {}).get("name") or "ctx_tf"


def _is_test(results):
    return str(results.get("protocol", {}).get("split", "")).upper() == "TEST"


def comparison_table(results, published=("CTX",), setting=leaderboard.IMAGENET_ONLY):
    """`(table, sources)`: `{model: {source: Score}}` in fractions, ours first.

    Published rows are included only for a TEST evaluation (they are test numbers), and only
    on the sources we evaluated.
    """
    sources = list(results["sources"])
    ours = {s: leaderboard.Score(e["mean"], e["ci95"], e["num_episodes"])
            for s, e in results["sources"].items()}
    table = {f"{_model_name(results)} (ours)": ours}
    if _is_test(results):
        for name in published:
            row = leaderboard.published_row(name, setting)
            scores = {s: leaderboard.Score(v.mean / 100.0, v.ci95 / 100.0, v.num_episodes)
                      for s, v in leaderboard.published_scores(row).items() if s in sources}
            if scores:  # nothing to show for sources outside Meta-Dataset
                table[f"{row.name} (published)"] = scores
    return table, sources


def results_markdown(results, published=("CTX",), setting=leaderboard.IMAGENET_ONLY):
    """The Markdown report: protocol, leaderboard-layout table, per-source details."""
    protocol = results.get("protocol", {})
    model = results.get("model", {})
    table, sources = comparison_table(results, published, setting)
    rankable = _is_test(results) and len(table) > 1
    lines = [f"# Meta-Dataset evaluation: {_model_name(results)}", ""]
    lines.append(f"- split: {protocol.get('split')}, {protocol.get('num_episodes')} episodes per "
                 f"source, seed {protocol.get('seed')}")
    if model.get("checkpoint"):
        lines.append(f"- checkpoint: `{model['checkpoint']}`")
    lines.append(f"- accuracy: mean of per-episode query accuracies; 95% CI = {CI95_FORMULA}")
    if not protocol.get("official", True):
        lines.append("- **episode configuration differs from the official protocol** "
                     "(see `protocol.episode_config` in results.json)")
    lines.append("")
    lines.append(leaderboard.markdown_table(table, sources, rank=rankable, scale=100.0))
    published_names = [n for n in table if n.endswith("(published)")]
    if rankable:
        trained_on = ("ImageNet only" if setting == leaderboard.IMAGENET_ONLY
                      else "all datasets")
        lines.append(
            f"Accuracy in percent ± 95% CI (rank). Ranks follow the official leaderboard rule "
            f"among the rows shown, over the {len(sources)} source(s) evaluated; published rows "
            f"({', '.join(published_names)}) are the google-research/meta-dataset leaderboard "
            f"numbers (trained on {trained_on}).")
        for name in published:
            row = leaderboard.published_row(name, setting)
            if f"{row.name} (published)" not in published_names:
                continue
            lines.append(f"- {row.name}: {row.description}. {row.reference}. Read from "
                         f"{row.read_from}.")
    elif not _is_test(results):
        lines.append("Accuracy in percent ± 95% CI. Not ranked: published numbers are TEST "
                     "results.")
    lines.append("")
    lines.append("## Per source")
    lines.append("")
    lines.append("| source | classes | sampling | episodes | way (min–max) | support (min–max) "
                 "| queries (min–max) | accuracy | episodes/s |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for source, e in results["sources"].items():
        eps = e["episodes"]

        def span(key):
            values = [x[key] for x in eps]
            return f"{min(values)}–{max(values)}"

        eps_per_s = e.get("episodes_per_second")
        lines.append(
            f"| {source} | {e.get('num_classes', '–')} | {e.get('sampling', '–')} "
            f"| {e['num_episodes']} | {span('way')} | {span('num_support')} "
            f"| {span('num_query')} | {100 * e['mean']:.2f} ± {100 * e['ci95']:.2f} "
            f"| {'–' if eps_per_s is None else f'{eps_per_s:.2f}'} |")
    comparison = results.get("comparison")
    if comparison:
        lines.append("")
        lines.append(f"## Paired difference against `{comparison['against']}`")
        lines.append("")
        lines.append("Same episodes; difference of per-episode accuracies (ours − theirs), "
                     "mean ± 95% CI in percent points.")
        lines.append("")
        lines.append("| source | ours | theirs | difference | significant |")
        lines.append("|---|---|---|---|---|")
        for source, d in comparison["paired_difference"].items():
            lines.append(f"| {source} | {100 * d['mean_a']:.2f} | {100 * d['mean_b']:.2f} "
                         f"| {100 * d['mean']:+.2f} ± {100 * d['ci95']:.2f} "
                         f"| {'yes' if d['significant'] else 'no'} |")
    return "\n".join(lines) + "\n"


def results_plot(results, published=("CTX",), setting=leaderboard.IMAGENET_ONLY,
                 size=plot.DEFAULT_SIZE):
    """PNG bytes: our accuracy per source with CI bars beside the published rows."""
    table, sources = comparison_table(results, published, setting)
    series = {name: {s: (score.mean, score.ci95) for s, score in row.items()}
              for name, row in table.items()}
    protocol = results.get("protocol", {})
    title = (f"{_model_name(results)}: {protocol.get('split')} accuracy, "
             f"{protocol.get('num_episodes')} episodes/source, 95% CI")
    return plot.bar_chart(series, sources, title=title, size=size)


def write_results(output_dir, results, published=("CTX",), setting=leaderboard.IMAGENET_ONLY,
                  plot_size=plot.DEFAULT_SIZE):
    """Writes results.json, episodes.csv, results.md and results.png; returns their paths."""
    output_dir = str(output_dir)
    tf.io.gfile.makedirs(output_dir)
    contents = {
        RESULTS_JSON: json.dumps(results, indent=1, sort_keys=False) + "\n",
        EPISODES_CSV: episodes_csv(results),
        RESULTS_MD: results_markdown(results, published, setting),
        RESULTS_PNG: results_plot(results, published, setting, plot_size),
    }
    paths = {}
    for name, data in contents.items():
        path = _join(output_dir, name)
        files.atomic_write(path, data)
        paths[name] = path
    return paths
