"""Published Meta-Dataset results and the official leaderboard ranking rule.

Numbers are percent accuracies with their 95% confidence intervals over 600 test episodes, as
published in the leaderboard of google-research/meta-dataset (tables in `README.md`, generated
by `Leaderboard.ipynb`). Each row records where it was read, and the benchmark version it was
measured on: all of them are Meta-Dataset v1 results (the leaderboard has no Meta-Dataset v2
table, so no v2 CTX row is published there), and a result is set beside rows of its own version
only.

Ranking (docs/protocol.md §8.4, `Leaderboard.ipynb`): for each test source, repeatedly take the remaining
model with the best mean; every remaining model m with
`|mu_best - mu_m| <= 1.96 * sqrt(sd_best**2 / n_best + sd_m**2 / n_m)`, where
`sd = ci95 * sqrt(n) / 1.96`, is tied with it; the k tied models occupy the next k ranks and
each gets their average. A model's average rank is the mean of its ranks over the test sources
(ILSVRC validation is never ranked).

A result is ranked against the published rows only on the sources where the comparison holds
(`ctx_tf.evaluation.comparability`); on the others (`withheld`, and always on sources whose
name is not a Meta-Dataset source) tables show our numbers unranked and say in one line why.
"""

import dataclasses
import math
from typing import Mapping, Optional, Sequence, Tuple

from ctx_tf.data import facts
from ctx_tf.errors import UserError
from ctx_tf.evaluation import benchmark_versions
from ctx_tf.evaluation import comparability
from ctx_tf.evaluation import stats

# The ten test sources of Meta-Dataset (v1), in the leaderboard's column order.
TEST_SOURCES = benchmark_versions.VERSIONS[benchmark_versions.MD_V1].test_sources

# Leaderboard column titles.
COLUMN_TITLES = {
    "ilsvrc_2012": "ILSVRC (test)",
    "omniglot": "Omniglot",
    "aircraft": "Aircraft",
    "cu_birds": "Birds",
    "dtd": "Textures",
    "quickdraw": "QuickDraw",
    "fungi": "Fungi",
    "vgg_flower": "VGG Flower",
    "traffic_sign": "Traffic signs",
    "mscoco": "MSCOCO",
}

# Short labels for plots.
SHORT_TITLES = {
    "ilsvrc_2012": "ILSVRC",
    "omniglot": "Omniglot",
    "aircraft": "Aircraft",
    "cu_birds": "Birds",
    "dtd": "Textures",
    "quickdraw": "QuickDraw",
    "fungi": "Fungi",
    "vgg_flower": "Flower",
    "traffic_sign": "Traffic",
    "mscoco": "MSCOCO",
}

# The leaderboard's two training settings: a result is set beside rows of its own only.
IMAGENET_ONLY = "imagenet"
ALL_DATASETS = "all"
SETTING_TITLES = {IMAGENET_ONLY: "ImageNet only", ALL_DATASETS: "all datasets"}

_README = "google-research/meta-dataset README.md, leaderboard 'Training on ImageNet only'"
_NOTEBOOK = "google-research/meta-dataset Leaderboard.ipynb (commit d6574b42)"

# Marks a withheld source in tables and charts; the footnote under them starts with
# WITHHELD_HEADING and gives one line per withheld source.
WITHHELD_MARK = "†"
WITHHELD_HEADING = f"{WITHHELD_MARK} Published rows not shown (comparison withheld):"


@dataclasses.dataclass(frozen=True)
class PublishedRow:
    """One published leaderboard row.

    Attributes:
      name: the method name as on the leaderboard.
      setting: `"imagenet"` (trained on ImageNet only) or `"all"` (all training sources).
      results: `{source: (mean_percent, ci95_percent)}`.
      num_episodes: test episodes per source behind each CI.
      reference: the article.
      read_from: where the numbers were read.
      description: what the model is.
      image_size: the image height and width the row was measured at (None: unknown); what
        `comparability.check_protocol(published_image_size=...)` compares a run with.
      benchmark: the benchmark version (`ctx_tf.evaluation.benchmark_versions`) the row was
        measured on; results are set beside rows of their own version only.
    """

    name: str
    setting: str
    results: Mapping[str, Tuple[float, float]]
    num_episodes: int
    reference: str
    read_from: str
    description: str = ""
    image_size: Optional[int] = None
    benchmark: str = benchmark_versions.MD_V1


def _row(values):
    if len(values) != len(TEST_SOURCES):
        raise ValueError(f"a published row needs {len(TEST_SOURCES)} values, got {len(values)}")
    return dict(zip(TEST_SOURCES, values))


_DOERSCH_2020 = ("Carl Doersch, Ankush Gupta, Andrew Zisserman; CrossTransformers: "
                 "spatially-aware few-shot transfer; NeurIPS 2020 (arXiv:2007.11498)")
_TRIANTAFILLOU_2020 = ("Eleni Triantafillou et al.; Meta-Dataset: A Dataset of Datasets for "
                       "Learning to Learn from Few Examples; ICLR 2020 (arXiv:1903.03096)")

PUBLISHED = (
    PublishedRow(
        name="CTX",
        setting=IMAGENET_ONLY,
        results=_row([(62.76, 0.99), (82.21, 1.00), (79.49, 0.89), (80.63, 0.88), (75.57, 0.64),
                      (72.68, 0.82), (51.58, 1.11), (95.34, 0.37), (82.65, 0.76),
                      (59.90, 1.02)]),
        num_episodes=600,
        reference=_DOERSCH_2020,
        read_from=f"{_README}; {_NOTEBOOK}, section 'CrossTransformers (`ctx`)'",
        description=("CrossTransformers, ResNet-34 at 224x224, 14x14 feature grid, SimCLR "
                     "episodes, BOHB-inspired augmentation"),
        # DataConfig.image_height in meta_dataset/learn/gin/default/
        # crosstransformer_simclreps_imagenet.gin.
        image_size=224,
    ),
    PublishedRow(
        name="ProtoNet (large)",
        setting=IMAGENET_ONLY,
        results=_row([(53.69, 1.07), (68.50, 1.27), (58.04, 0.96), (74.07, 0.92), (68.76, 0.77),
                      (53.30, 1.06), (40.73, 1.15), (86.96, 0.73), (58.11, 1.05),
                      (41.70, 1.08)]),
        num_episodes=600,
        reference=_DOERSCH_2020,
        read_from=f"{_README}; {_NOTEBOOK}, section 'ProtoNet large (`protonet_large`)'",
        description="Prototypical Networks, ResNet-34 at 224x224, SimCLR episodes",
        image_size=224,  # the CrossTransformers paper's large baseline (as CTX)
    ),
    PublishedRow(
        name="ProtoNet",
        setting=IMAGENET_ONLY,
        results=_row([(50.50, 1.08), (59.98, 1.35), (53.10, 1.00), (68.79, 1.01), (66.56, 0.83),
                      (48.96, 1.08), (39.71, 1.11), (85.27, 0.77), (47.12, 1.10),
                      (41.00, 1.10)]),
        num_episodes=600,
        reference=_TRIANTAFILLOU_2020,
        read_from=_README,
        description="Prototypical Networks, the Meta-Dataset paper's configuration",
        # DataConfig.image_height in meta_dataset/learn/gin/best/prototypical_imagenet.gin
        # (the paper's chosen hyperparameters).
        image_size=126,
    ),
)


class UnknownRowError(UserError, KeyError):
    """No published row of that name in that setting."""

    __str__ = Exception.__str__  # KeyError's would quote the message


def published_row(name, setting=IMAGENET_ONLY):
    """The published row called `name` (case-insensitive) in `setting`."""
    for row in PUBLISHED:
        if row.name.lower() == name.lower() and row.setting == setting:
            return row
    known = ", ".join(repr(r.name) for r in PUBLISHED if r.setting == setting)
    raise UnknownRowError(f"no published row {name!r} for setting {setting!r}; known: {known}")


def check_row_names(names):
    """Raises UnknownRowError for a name that is no published row in any setting."""
    for name in names:
        if not any(row.name.lower() == name.lower() for row in PUBLISHED):
            known = ", ".join(dict.fromkeys(repr(row.name) for row in PUBLISHED))
            raise UnknownRowError(f"no published row {name!r}; known: {known}")


def published_rows(names, setting):
    """`(rows, missing)`: the published rows called `names` in `setting` (None, an unknown
    training setting, has none), and the names without a row in it."""
    rows, missing = [], []
    for name in names:
        found = [row for row in PUBLISHED
                 if row.name.lower() == name.lower() and row.setting == setting]
        rows.extend(found[:1])
        if not found:
            missing.append(name)
    return rows, missing


def training_setting(train_datasets):
    """The leaderboard setting of a run trained on `train_datasets`: IMAGENET_ONLY (ILSVRC
    alone, of either benchmark version, or nothing at all: the raw-pixel floor), ALL_DATASETS
    (a version's whole training list), or None (another setting, e.g. Omniglot alone or
    mini-ImageNet: no published row has it)."""
    names = sorted(set(train_datasets))
    if not names:
        return IMAGENET_ONLY  # trained on no data: within the ImageNet-only restriction
    for version in benchmark_versions.VERSIONS.values():
        if names == [version.imagenet_source]:
            return IMAGENET_ONLY
        if names == sorted(version.train_sources):
            return ALL_DATASETS
    return None


def setting_title(setting):
    return SETTING_TITLES.get(setting, "another training setting")


@dataclasses.dataclass(frozen=True)
class Score:
    """One model's result on one source: mean and ci95 in the same unit, over n episodes."""

    mean: float
    ci95: float
    num_episodes: int = 600

    def __post_init__(self):
        if not (math.isfinite(self.mean) and math.isfinite(self.ci95)) or self.ci95 < 0:
            raise ValueError(f"invalid score {self}")
        if self.num_episodes < 1:
            raise ValueError(f"num_episodes must be >= 1, got {self.num_episodes}")

    @property
    def std(self):
        return stats.std_from_ci95(self.ci95, self.num_episodes)


def tied(best: Score, other: Score) -> bool:
    """True when `other` is not significantly different from `best` (official test)."""
    bound = stats.Z_95 * math.sqrt(best.std ** 2 / best.num_episodes
                                   + other.std ** 2 / other.num_episodes)
    # Published numbers have two decimals; the epsilon keeps exact ties exact.
    return abs(best.mean - other.mean) <= bound + 1e-9


def rank_source(scores: Mapping[str, Score]):
    """`{model: rank}` on one source by the official iterative rule (1 = best)."""
    remaining = sorted(scores, key=lambda m: -scores[m].mean)
    ranks = {}
    next_rank = 1
    while remaining:
        best = scores[remaining[0]]
        group = [m for m in remaining if tied(best, scores[m])]
        shared = next_rank + (len(group) - 1) / 2.0
        for m in group:
            ranks[m] = shared
        next_rank += len(group)
        remaining = [m for m in remaining if m not in group]
    return ranks


def withheld_sources(sources, withheld=None):
    """`{source: one-line reason}` of the sources in `sources` not compared with published
    rows: those in `withheld` (reasons as `comparability.comparison_verdict` gives them) and
    every source whose name is not a Meta-Dataset source."""
    withheld = dict(withheld or {})
    result = {}
    for source in sources:
        if source in withheld:
            result[source] = withheld[source]
        elif source not in facts.SOURCES:
            check = comparability.SourceCheck(name=source, official=False, matches=False,
                                              summary=comparability.NOT_OFFICIAL)
            result[source] = comparability.comparison_verdict(check)[1]
    return result


def _sources_of(table):
    seen = []
    for row in table.values():
        for s in row:
            if s not in seen:
                seen.append(s)
    return [s for s in TEST_SOURCES if s in seen] + [s for s in seen if s not in TEST_SOURCES]


def rank_models(table: Mapping[str, Mapping[str, Score]], sources: Optional[Sequence[str]] = None,
                *, withheld: Optional[Mapping[str, str]] = None):
    """Ranks every model on every compared source and averages.

    Args:
      table: `{model: {source: Score}}`.
      sources: the sources to rank on (default: the test sources present in any row, in
        leaderboard order, then any others in first-seen order).
      withheld: `{source: reason}`: sources not ranked; sources whose name is not a
        Meta-Dataset source are never ranked either (`withheld_sources`).

    Returns:
      `(ranks, average_rank)`: `ranks[model][source]` for every ranked source the model has;
      `average_rank[model]` = mean of its ranks (over the sources it has; NaN when none).
    """
    if sources is None:
        sources = _sources_of(table)
    skipped = withheld_sources(sources, withheld)
    ranks = {m: {} for m in table}
    for source in sources:
        if source in skipped:
            continue
        column = {m: row[source] for m, row in table.items() if source in row}
        for m, r in rank_source(column).items():
            ranks[m][source] = r
    average = {m: (sum(r.values()) / len(r) if r else float("nan")) for m, r in ranks.items()}
    return ranks, average


def published_scores(row: PublishedRow):
    """`{source: Score}` (percent) of a published row."""
    return {s: Score(m, c, row.num_episodes) for s, (m, c) in row.results.items()}


def withheld_footnote(withheld):
    """The lines under a table or chart with withheld sources (none when there are none):
    one per reason; sources withheld for the same reason (`"name: why"`) share its line."""
    if not withheld:
        return []
    names_by_why = {}
    for source, reason in withheld.items():
        prefix = f"{source}: "
        why = reason[len(prefix):] if reason.startswith(prefix) else None
        names_by_why.setdefault(why if why is not None else reason, []).append(
            source if why is not None else None)
    lines = [WITHHELD_HEADING]
    for why, names in names_by_why.items():
        if None in names:  # a reason that does not start with its source's name
            lines.append(f"- {why}")
        else:
            lines.append(f"- {', '.join(names)}: {why}")
    return lines


def markdown_table(table: Mapping[str, Mapping[str, Score]], sources: Sequence[str],
                   rank=True, scale=1.0, *, withheld: Optional[Mapping[str, str]] = None,
                   published: Sequence[str] = (), unranked: Sequence[str] = ()):
    """A leaderboard-layout Markdown table: one row per model, one column per source.

    Cells read `mean ± ci (rank)`; the best group of each column (rank-1 ties) is bold, as on
    the leaderboard. `scale` multiplies means and CIs (100 for fractions -> percent). The
    "Mean" column is the average of the per-source means (only for models with every source
    shown).

    On withheld sources (`withheld_sources(sources, withheld)`: the given ones and every
    non-Meta-Dataset name) nothing is ranked or bold, the `published` rows' cells read
    "withheld", the column title is marked and a footnote gives each reason in one line.
    `unranked` rows (e.g. the raw-pixel floor) are shown but never ranked.
    """
    skipped = withheld_sources(sources, withheld)
    ranked_table = {m: row for m, row in table.items() if m not in unranked}
    if rank:
        ranks, average = rank_models(ranked_table, sources, withheld=skipped)
    else:
        ranks, average = {}, {}
    best_rank = {}
    for source in sources:
        values = [r[source] for r in ranks.values() if source in r]
        if values:
            best_rank[source] = min(values)
    header = ["Method"] + (["Avg rank"] if rank else []) + ["Mean"] + [
        COLUMN_TITLES.get(s, s) + (f" {WITHHELD_MARK}" if s in skipped else "") for s in sources]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for model, row in table.items():
        model_ranks = ranks.get(model, {})
        shown = {s: row[s] for s in sources
                 if s in row and not (model in published and s in skipped)}
        cells = [model.replace("|", "\\|")]
        if rank:
            cells.append(f"{average[model]:.2f}" if model_ranks else "–")
        if len(shown) == len(sources):
            cells.append(f"{sum(v.mean for v in shown.values()) / len(sources) * scale:.2f}")
        else:
            cells.append("–")
        for s in sources:
            if s not in shown:
                cells.append("withheld" if s in row and s in skipped else "–")
                continue
            mean = f"{shown[s].mean * scale:.2f}"
            if s in model_ranks and model_ranks[s] == best_rank.get(s):
                mean = f"**{mean}**"
            cell = f"{mean} ± {shown[s].ci95 * scale:.2f}"
            if s in model_ranks:
                cell += f" ({model_ranks[s]:g})"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    footnote = withheld_footnote(skipped)
    if footnote:
        lines += [""] + footnote
    return "\n".join(lines) + "\n"
