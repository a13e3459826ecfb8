"""Published Meta-Dataset results and the official leaderboard ranking rule.

Numbers are percent accuracies with their 95% confidence intervals over 600 test episodes, as
published in the leaderboard of google-research/meta-dataset (tables in `README.md`, generated
by `Leaderboard.ipynb`). Each row records where it was read.

Ranking (protocol §6, `Leaderboard.ipynb`): for each test source, repeatedly take the remaining
model with the best mean; every remaining model m with
`|mu_best - mu_m| <= 1.96 * sqrt(sd_best**2 / n_best + sd_m**2 / n_m)`, where
`sd = ci95 * sqrt(n) / 1.96`, is tied with it; the k tied models occupy the next k ranks and
each gets their average. A model's average rank is the mean of its ranks over the test sources
(ILSVRC validation is never ranked).
"""

import dataclasses
import math
from typing import Mapping, Optional, Sequence, Tuple

from ctx_tf.evaluation import stats

# The ten test sources of Meta-Dataset (v1), in the leaderboard's column order.
TEST_SOURCES = (
    "ilsvrc_2012", "omniglot", "aircraft", "cu_birds", "dtd", "quickdraw", "fungi",
    "vgg_flower", "traffic_sign", "mscoco",
)

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

IMAGENET_ONLY = "imagenet"
ALL_DATASETS = "all"

_README = "google-research/meta-dataset README.md, leaderboard 'Training on ImageNet only'"
_NOTEBOOK = "google-research/meta-dataset Leaderboard.ipynb (commit d6574b42)"


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
    """

    name: str
    setting: str
    results: Mapping[str, Tuple[float, float]]
    num_episodes: int
    reference: str
    read_from: str
    description: str = ""


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
    ),
)


def published_row(name, setting=IMAGENET_ONLY):
    """The published row called `name` (case-insensitive) in `setting`."""
    for row in PUBLISHED:
        if row.name.lower() == name.lower() and row.setting == setting:
            return row
    known = ", ".join(repr(r.name) for r in PUBLISHED if r.setting == setting)
    raise KeyError(f"no published row {name!r} for setting {setting!r}; known: {known}")


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


def rank_models(table: Mapping[str, Mapping[str, Score]], sources: Optional[Sequence[str]] = None):
    """Ranks every model on every source and averages.

    Args:
      table: `{model: {source: Score}}`.
      sources: the sources to rank on (default: the test sources present in any row, in
        leaderboard order, then any others in first-seen order).

    Returns:
      `(ranks, average_rank)`: `ranks[model][source]` for every source the model has;
      `average_rank[model]` = mean of its ranks (over the sources it has).
    """
    if sources is None:
        seen = []
        for row in table.values():
            for s in row:
                if s not in seen:
                    seen.append(s)
        sources = [s for s in TEST_SOURCES if s in seen] + [s for s in seen
                                                             if s not in TEST_SOURCES]
    ranks = {m: {} for m in table}
    for source in sources:
        column = {m: row[source] for m, row in table.items() if source in row}
        for m, r in rank_source(column).items():
            ranks[m][source] = r
    average = {m: (sum(r.values()) / len(r) if r else float("nan")) for m, r in ranks.items()}
    return ranks, average


def published_scores(row: PublishedRow):
    """`{source: Score}` (percent) of a published row."""
    return {s: Score(m, c, row.num_episodes) for s, (m, c) in row.results.items()}


def markdown_table(table: Mapping[str, Mapping[str, Score]], sources: Sequence[str],
                   rank=True, scale=1.0):
    """A leaderboard-layout Markdown table: one row per model, one column per source.

    Cells read `mean ± ci (rank)`; the best group of each column (rank-1 ties) is bold, as on
    the leaderboard. `scale` multiplies means and CIs (100 for fractions -> percent). The
    "Mean" column is the average of the per-source means (only for models with every source).
    """
    ranks, average = rank_models(table, sources) if rank else ({m: {} for m in table}, {})
    best_rank = {}
    for source in sources:
        values = [ranks[m][source] for m in table if source in ranks[m]]
        if values:
            best_rank[source] = min(values)
    header = ["Method"] + (["Avg rank"] if rank else []) + ["Mean"] + [
        COLUMN_TITLES.get(s, s) for s in sources]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for model, row in table.items():
        cells = [model.replace("|", "\\|")]
        if rank:
            cells.append(f"{average[model]:.2f}" if ranks[model] else "–")
        if all(s in row for s in sources):
            cells.append(f"{sum(row[s].mean for s in sources) / len(sources) * scale:.2f}")
        else:
            cells.append("–")
        for s in sources:
            if s not in row:
                cells.append("–")
                continue
            mean = f"{row[s].mean * scale:.2f}"
            if rank and ranks[model].get(s) == best_rank.get(s):
                mean = f"**{mean}**"
            cell = f"{mean} ± {row[s].ci95 * scale:.2f}"
            if rank and s in ranks[model]:
                cell += f" ({ranks[model][s]:g})"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
