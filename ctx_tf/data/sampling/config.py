"""`EpisodeDescriptionConfig`: how episodes are composed (the official gin-configurable)."""

import gin
import numpy as np

# Official defaults (setups/data_config_common.gin + setups/variable_way_and_shot.gin).
_LOG_HALF = -0.69314718055994529
_LOG_TWO = 0.69314718055994529


@gin.configurable
class EpisodeDescriptionConfig:
    """How episodes are composed; parameter names and meaning are the official ones.

    Defaults are the official variable-way, variable-shot values. `num_support` is an int
    (fixed shots), a pair `(lo, hi)` (one shot value drawn per episode for all classes) or
    None (variable, class-imbalanced shots).
    """

    def __init__(self, num_ways=None, num_support=None, num_query=None, min_ways=5,
                 max_ways_upper_bound=50, max_num_query=10, max_support_set_size=500,
                 max_support_size_contrib_per_class=100, min_log_weight=_LOG_HALF,
                 max_log_weight=_LOG_TWO, ignore_dag_ontology=False,
                 ignore_bilevel_ontology=False, ignore_hierarchy_probability=0.0,
                 simclr_episode_fraction=0.0, min_examples_in_class=0,
                 num_unique_descriptions=0, episode_description_switch_frequency=1):
        groups = (
            ("num_ways", num_ways, {"min_ways": min_ways,
                                    "max_ways_upper_bound": max_ways_upper_bound}),
            ("num_query", num_query, {"max_num_query": max_num_query}),
            ("num_support", num_support, {
                "max_support_set_size": max_support_set_size,
                "max_support_size_contrib_per_class": max_support_size_contrib_per_class,
                "min_log_weight": min_log_weight,
                "max_log_weight": max_log_weight}),
        )
        for name, value, required in groups:
            missing = [k for k, v in required.items() if v is None]
            if value is None and missing:
                raise RuntimeError(
                    f"EpisodeDescriptionConfig: {missing} cannot be None since {name} is None; "
                    f"bind them with gin (e.g. EpisodeDescriptionConfig.{missing[0]} = ...)"
                )
        if num_support is not None and not isinstance(num_support, (int, np.integer)):
            try:
                lo, hi = num_support
            except (TypeError, ValueError):
                raise ValueError(
                    "EpisodeDescriptionConfig.num_support must be an int, a pair (lo, hi) or "
                    f"None, got {num_support!r}"
                ) from None
            if not 1 <= lo <= hi:
                raise ValueError(
                    f"EpisodeDescriptionConfig.num_support range must satisfy 1 <= lo <= hi, "
                    f"got {num_support!r}"
                )
            num_support = (int(lo), int(hi))
        if not 0.0 <= ignore_hierarchy_probability <= 1.0:
            raise ValueError(
                "EpisodeDescriptionConfig.ignore_hierarchy_probability must be in [0, 1], got "
                f"{ignore_hierarchy_probability!r}"
            )
        if not 0.0 <= simclr_episode_fraction <= 1.0:
            raise ValueError(
                "EpisodeDescriptionConfig.simclr_episode_fraction must be in [0, 1], got "
                f"{simclr_episode_fraction!r}"
            )
        if episode_description_switch_frequency < 1:
            raise ValueError(
                "EpisodeDescriptionConfig.episode_description_switch_frequency must be >= 1, "
                f"got {episode_description_switch_frequency!r}"
            )
        self.num_ways = num_ways
        self.num_support = num_support
        self.num_query = num_query
        self.min_ways = min_ways
        self.max_ways_upper_bound = max_ways_upper_bound
        self.max_num_query = max_num_query
        self.max_support_set_size = max_support_set_size
        self.max_support_size_contrib_per_class = max_support_size_contrib_per_class
        self.min_log_weight = min_log_weight
        self.max_log_weight = max_log_weight
        self.ignore_dag_ontology = ignore_dag_ontology
        self.ignore_bilevel_ontology = ignore_bilevel_ontology
        self.ignore_hierarchy_probability = ignore_hierarchy_probability
        self.simclr_episode_fraction = simclr_episode_fraction
        self.min_examples_in_class = min_examples_in_class
        self.num_unique_descriptions = num_unique_descriptions
        self.episode_description_switch_frequency = episode_description_switch_frequency

    @property
    def max_ways(self):
        """The way of an episode, or its upper bound when the way is variable."""
        return self.num_ways or self.max_ways_upper_bound

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"EpisodeDescriptionConfig({fields})"
