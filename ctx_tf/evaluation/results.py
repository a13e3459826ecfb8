"""Evaluation results: the `results.json` layout, and the files written beside it.

`results.json` (format `ctx_tf.evaluation/1`) holds everything needed to recompute every
number: per source the per-episode way, support size, per-class shot range, query count,
accuracy and a fingerprint of the episode (see `episode_fingerprint`), and the
summary `mean` / `ci95` (fractions in [0, 1]), the raw-pixel floor on the same episodes
(`floor_accuracy`, `floor_mean`, `floor_ci95`) and `comparability`: whether the source is the
official one and the protocol the published rows', and if not the one line why
(`comparison.comparison_verdicts`). `episodes.csv` has the per-episode rows of all sources;
`results.md` the leaderboard-layout table (published rows ranked only where comparable);
`results.png` the bar chart.

Every file is written to a temporary name and renamed into place, on any `tf.io.gfile`
filesystem, results.json last, so a reader never sees a half-written or partial result.
"""

import csv
import hashlib
import io
import json
import posixpath

import numpy as np
import tensorflow as tf

from ctx_tf import files
from ctx_tf.errors import UserError
from ctx_tf.evaluation import benchmark_versions
from ctx_tf.evaluation import comparison
from ctx_tf.evaluation import leaderboard
from ctx_tf.evaluation import plot
from ctx_tf.evaluation import stats
from ctx_tf.evaluation.floor import FLOOR_NAME

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


def episode_fingerprint(support_labels, support_class_ids, query_labels, query_class_ids):
    """A short hash of an episode's classes and shots (its description), in order."""
    h = hashlib.sha1()
    for array in (support_labels, support_class_ids, query_labels, query_class_ids):
        array = np.ascontiguousarray(np.asarray(array, dtype=np.int64))
        h.update(str(array.shape).encode())
        h.update(array.tobytes())
    return h.hexdigest()[:16]


def image_digest(support_means, query_means):
    """A short hash of the per-image means (rounded), telling which images an episode has."""
    h = hashlib.sha1()
    for means in (support_means, query_means):
        h.update(np.round(np.asarray(means, np.float64), 3).tobytes())
    return h.hexdigest()[:16]


def episode_record(index, episode, logits, support_means=None, query_means=None,
                   accuracy=None):
    """The per-episode row of results.json for one evaluated episode (numpy inputs);
    `accuracy` replaces the accuracy of `logits` (None) when given."""
    support_labels = np.asarray(episode.support_labels)
    query_labels = np.asarray(episode.query_labels)
    way = int(support_labels.max()) + 1
    shots = np.bincount(support_labels, minlength=way)
    record = {
        "episode": int(index),
        "way": way,
        "num_support": int(support_labels.size),
        "shots_min": int(shots.min()),
        "shots_max": int(shots.max()),
        "num_query": int(query_labels.size),
        "accuracy": (stats.episode_accuracy(logits, query_labels) if accuracy is None
                     else accuracy),
        "fingerprint": episode_fingerprint(support_labels, episode.support_class_ids,
                                           query_labels, episode.query_class_ids),
    }
    if support_means is not None:
        record["image_digest"] = image_digest(support_means, query_means)
    return record


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
    model = results.get("model", {})
    return model.get("name") or (FLOOR_NAME if model.get("floor_only") else "ctx_tf")


def _is_test(results):
    return str(results.get("protocol", {}).get("split", "")).upper() == "TEST"


def _has_floor_row(results):
    return (not results.get("model", {}).get("floor_only")
            and all("floor_mean" in e for e in results["sources"].values()))


def comparison_table(results, published=("CTX",), setting=None):
    """`(table, sources, withheld, published_names)`.

    `table` is `{model: {source: Score}}` in fractions: ours, the raw-pixel floor on the same
    episodes (when recorded), then the published rows, which are included only for a TEST
    evaluation (they are test numbers) and only on the sources we evaluated. `withheld` is
    `{source: reason}` for the sources where the published rows must not be compared.
    """
    sources = list(results["sources"])
    ours = {s: leaderboard.Score(e["mean"], e["ci95"], e["num_episodes"])
            for s, e in results["sources"].items()}
    table = {f"{_model_name(results)} (ours)": ours}
    if _has_floor_row(results):
        table[FLOOR_NAME] = {s: leaderboard.Score(e["floor_mean"], e["floor_ci95"],
                                                  e["num_episodes"])
                             for s, e in results["sources"].items()}
    published_names, withheld = [], {}
    setting = comparison.setting_of(results) if setting is None else setting
    rows, _ = leaderboard.published_rows(published, setting)
    if _is_test(results) and rows:
        verdicts = comparison.comparison_verdicts(results, published, setting)
        withheld = {s: v["withheld"] for s, v in verdicts.items() if not v["comparable"]}
        for row in rows:
            scores = {s: leaderboard.Score(v.mean / 100.0, v.ci95 / 100.0, v.num_episodes)
                      for s, v in leaderboard.published_scores(row).items() if s in sources}
            if scores:  # nothing to show for sources outside Meta-Dataset
                table[f"{row.name} (published)"] = scores
                published_names.append(f"{row.name} (published)")
    return table, sources, withheld, published_names


def results_markdown(results, published=("CTX",), setting=None):
    """The Markdown report: protocol, leaderboard-layout table, per-source details."""
    setting = comparison.setting_of(results) if setting is None else setting
    protocol = results.get("protocol", {})
    model = results.get("model", {})
    table, sources, withheld, published_names = comparison_table(results, published, setting)
    rankable = bool(published_names) and len(withheld) < len(sources)
    version = benchmark_versions.get(comparison.benchmark_of(results))
    lines = [f"# Meta-Dataset evaluation: {_model_name(results)}", ""]
    lines.append(f"- benchmark: {version.title} (`{version.name}`)")
    lines.append(f"- split: {protocol.get('split')}, {protocol.get('num_episodes')} episodes per "
                 f"source, seed {protocol.get('seed')}, image size {protocol.get('image_size')}")
    if model.get("checkpoint"):
        lines.append(f"- checkpoint: `{model['checkpoint']}`")
    lines.append(f"- accuracy: mean of per-episode query accuracies; 95% CI = {CI95_FORMULA}")
    if _has_floor_row(results) or model.get("floor_only"):
        lines.append(f"- {FLOOR_NAME}: each query goes to the class whose mean support image "
                     "is nearest; the same episodes, never ranked")
    lines.append("")
    lines.append(leaderboard.markdown_table(
        table, sources, rank=rankable, scale=100.0, withheld=withheld,
        published=published_names, unranked=[FLOOR_NAME]))
    if rankable:
        trained_on = leaderboard.setting_title(setting)
        ranked = len(sources) - len(withheld)
        lines.append(
            f"Accuracy in percent ± 95% CI (rank). Ranks follow the official leaderboard rule "
            f"among the rows shown, over the {ranked} source(s) compared; published rows "
            f"({', '.join(published_names)}) are the google-research/meta-dataset leaderboard "
            f"numbers ({version.title}, trained on {trained_on}).")
    elif published_names:
        lines.append("Accuracy in percent ± 95% CI. Not ranked: the comparison with the "
                     "published rows is withheld on every source (reasons above).")
    elif not _is_test(results):
        lines.append("Accuracy in percent ± 95% CI. Not ranked: published numbers are TEST "
                     "results.")
    note = comparison.setting_note(results, published, setting) if _is_test(results) else ""
    if note:
        lines.append(f"Accuracy in percent ± 95% CI. Not ranked: {note}.")
    for name in published_names:
        row = leaderboard.published_row(name[:-len(" (published)")], setting)
        lines.append(f"- {row.name}: {row.description}. {row.reference}. Read from "
                     f"{row.read_from}.")
    lines.append("")
    lines.append("## Per source")
    lines.append("")
    lines.append("| source | classes | sampling | episodes | way (min–max) | support (min–max) "
                 "| queries (min–max) | accuracy | floor | episodes/s | records |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    verdicts = comparison.comparison_verdicts(results, published, setting)
    for source, e in results["sources"].items():
        eps = e["episodes"]

        def span(key):
            values = [x[key] for x in eps]
            return f"{min(values)}–{max(values)}"

        eps_per_s = e.get("episodes_per_second")
        floor = (f"{100 * e['floor_mean']:.2f} ± {100 * e['floor_ci95']:.2f}"
                 if "floor_mean" in e else "–")
        lines.append(
            f"| {source} | {e.get('num_classes', '–')} | {e.get('sampling', '–')} "
            f"| {e['num_episodes']} | {span('way')} | {span('num_support')} "
            f"| {span('num_query')} | {100 * e['mean']:.2f} ± {100 * e['ci95']:.2f} "
            f"| {floor} | {'–' if eps_per_s is None else f'{eps_per_s:.2f}'} "
            f"| {verdicts[source]['summary']} |")
    paired = results.get("comparison")
    if paired:
        lines.append("")
        lines.append(f"## Paired difference against `{paired['against']}`")
        lines.append("")
        lines.append("Same episodes; difference of per-episode accuracies (ours − theirs), "
                     "mean ± 95% CI in percent points.")
        lines.append("")
        lines.append("| source | ours | theirs | difference | significant |")
        lines.append("|---|---|---|---|---|")
        for source, d in paired["paired_difference"].items():
            lines.append(f"| {source} | {100 * d['mean_a']:.2f} | {100 * d['mean_b']:.2f} "
                         f"| {100 * d['mean']:+.2f} ± {100 * d['ci95']:.2f} "
                         f"| {'yes' if d['significant'] else 'no'} |")
    return "\n".join(lines) + "\n"


def results_plot(results, published=("CTX",), setting=None,
                 size=plot.DEFAULT_SIZE):
    """PNG bytes: our accuracy per source with CI bars beside the floor and the published
    rows (not drawn where the comparison is withheld)."""
    table, sources, withheld, published_names = comparison_table(results, published, setting)
    series = {name: {s: (score.mean, score.ci95) for s, score in row.items()}
              for name, row in table.items()}
    protocol = results.get("protocol", {})
    title = (f"{_model_name(results)}: {protocol.get('split')} accuracy, "
             f"{protocol.get('num_episodes')} episodes/source, 95% CI")
    return plot.bar_chart(series, sources, title=title, size=size, withheld=withheld,
                          published=published_names)


def write_results(output_dir, results, published=("CTX",), setting=None,
                  plot_size=plot.DEFAULT_SIZE):
    """Writes episodes.csv, results.md, results.png and, last, results.json (with every
    source's comparability verdict); returns their paths."""
    output_dir = str(output_dir)
    tf.io.gfile.makedirs(output_dir)
    results = comparison.with_comparisons(results, published, setting)
    contents = {
        EPISODES_CSV: episodes_csv(results),
        RESULTS_MD: results_markdown(results, published, setting),
        RESULTS_PNG: results_plot(results, published, setting, plot_size),
        RESULTS_JSON: json.dumps(results, indent=1, sort_keys=False) + "\n",
    }
    paths = {}
    for name, data in contents.items():
        path = _join(output_dir, name)
        files.atomic_write(path, data)
        paths[name] = path
    return paths
