"""Meta-Dataset evaluation: the official test protocol, statistics, leaderboard and reports.

* `sources`: a records root and source names -> checked specs.
* `protocol`: episodes of each source's TEST/VALID classes run through a learner.
* `evaluator`: one evaluation start to finish (progress, journal, files), for validation, the
  final test and `python -m ctx_tf.evaluate`.
* `stats`: per-episode accuracy, mean and 95% CI (ddof=0), paired differences.
* `floor`: the raw-pixel nearest-centroid floor.
* `results`: results.json / episodes.csv / results.md / results.png.
* `comparison`, `comparability`: which published rows a result stands beside, and why not.
* `leaderboard`: published Meta-Dataset rows, their training settings, the official ranking.
* `plot`: the bar chart.

The command line is `python -m ctx_tf.evaluate`.
"""

from ctx_tf.evaluation.leaderboard import PUBLISHED, TEST_SOURCES, rank_models, rank_source
from ctx_tf.evaluation.stats import episode_accuracy, mean_and_ci95, paired_difference

__all__ = [
    "PUBLISHED",
    "TEST_SOURCES",
    "episode_accuracy",
    "mean_and_ci95",
    "paired_difference",
    "rank_models",
    "rank_source",
]
