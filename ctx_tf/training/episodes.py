"""The datasets of a run (`benchmark`) and its training episodes."""

import gin

from ctx_tf.data import dataset_spec as spec_lib
from ctx_tf.data import pipeline as pipeline_lib
from ctx_tf.errors import UserError


class DataError(UserError, ValueError):
    """The run's datasets cannot be found or read as configured."""


@gin.configurable
def benchmark(train_datasets="", eval_datasets="", use_dumped_episodes=False,
              restrict_classes=None, restrict_num_per_class=None):
    """The datasets of a run: `(train_dataset_list, eval_dataset_list)` (official names).

    Comma-separated source names, i.e. folder names under `--records_root_dir`. Dumped
    episodes and class restrictions are not supported.
    """
    if use_dumped_episodes:
        raise DataError("benchmark.use_dumped_episodes = True is not supported by ctx_tf")
    if restrict_classes or restrict_num_per_class:
        raise DataError(
            "benchmark.restrict_classes / benchmark.restrict_num_per_class are not supported")

    def split(names, binding):
        if not isinstance(names, str):
            raise DataError(f"{binding} must be a comma-separated string, got {names!r}")
        return [n.strip() for n in names.split(",") if n.strip()]

    return (split(train_datasets, "benchmark.train_datasets"),
            split(eval_datasets, "benchmark.eval_datasets"))


def training_episodes(specs, config, data_config, seed):
    """Training episodes (TRAIN split) of `specs`, an iterator of `Episode`."""
    simclr = getattr(config, "simclr_episode_fraction", 0.0)
    ignore = getattr(config, "ignore_hierarchy_probability", 0.0)
    flags = [spec_lib.use_ontologies(
        s.name, getattr(config, "ignore_dag_ontology", False),
        getattr(config, "ignore_bilevel_ontology", False)) for s in specs]
    kwargs = data_config.pipeline_kwargs()
    if len(specs) == 1:
        dataset = pipeline_lib.make_one_source_episode_pipeline(
            specs[0], flags[0][0], flags[0][1], spec_lib.Split.TRAIN, config,
            ignore_hierarchy_probability=ignore, simclr_episode_fraction=simclr, seed=seed,
            **kwargs)
    else:
        if ignore:
            raise DataError(
                "train/EpisodeDescriptionConfig.ignore_hierarchy_probability > 0 is not "
                "supported with several training datasets (the multi-source pipeline "
                "ignores it, as officially)")
        dataset = pipeline_lib.make_multisource_episode_pipeline(
            specs, [f[0] for f in flags], [f[1] for f in flags], spec_lib.Split.TRAIN, config,
            simclr_episode_fraction=simclr, seed=seed, **kwargs)
    # Read errors name the damaged class file (pipeline.iterate).
    return (episode for episode, _ in pipeline_lib.iterate(dataset, specs, spec_lib.Split.TRAIN))
