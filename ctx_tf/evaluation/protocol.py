"""The official Meta-Dataset test protocol, run on a learner (docs/protocol.md §8).

For each source: `num_episodes` (600) episodes of its TEST (or VALID) classes, sampled with the
un-scoped `EpisodeDescriptionConfig` (variable way and shot by default) with
`ignore_hierarchy_probability = 0` and no SimCLR episodes whatever the training config says;
DAG sampling for `ilsvrc_2012*`, bi-level for `omniglot`, uniform otherwise; the learner runs
with `training=False` (batch norm uses its moving averages). Each episode's accuracy is the
fraction of its queries classified correctly; the source's result is the mean over episodes
with `ci95 = 1.96 * std(ddof=0) / sqrt(n)`.

Seeding: with `seed` (an int), the episode pipeline of each source is seeded with a value
derived from `seed` and the source's *name*, so a source gets the same episodes whichever other
sources are evaluated with it, run after run, and two models evaluated with the same seed see
identical episodes (compare them with `stats.paired_difference`). `seed=None` is the official,
unseeded behaviour.
"""

import contextlib
import copy
import dataclasses
import itertools
import time

import numpy as np
import tensorflow as tf

from ctx_tf import distribute as distribute_lib
from ctx_tf.data import dataset_spec as dataset_spec_lib
from ctx_tf.data import pipeline
from ctx_tf.data import sampling
from ctx_tf.evaluation import benchmark_versions
from ctx_tf.evaluation import comparability
from ctx_tf.errors import UserError
from ctx_tf.evaluation import results as results_lib
from ctx_tf.evaluation import sources as sources_lib
from ctx_tf.evaluation import stats
from ctx_tf.evaluation.floor import nearest_centroid_accuracy
from ctx_tf.progress import format_accuracy
from ctx_tf.seeds import derive_seed

NUM_EVAL_EPISODES = comparability.MIN_EPISODES
# Forced for evaluation, whatever the (training) gin config binds.
_EVALUATION_OVERRIDES = {
    "ignore_hierarchy_probability": 0.0,
    "simclr_episode_fraction": 0.0,
    "ignore_dag_ontology": False,
    "ignore_bilevel_ontology": False,
}


class EvaluationError(UserError, ValueError):
    """Evaluation cannot run as asked (unknown source, split without classes, ...)."""


# ------------------------------------------------------------------------- configuration


def evaluation_episode_config(config=None):
    """`(config, overrides)`: the episode config evaluation uses.

    Args:
      config: an `EpisodeDescriptionConfig` (default: a new one, so un-scoped gin bindings
        apply, as in the official evaluation).

    Returns:
      A copy with the evaluation overrides applied (no hierarchy-ignoring episodes, no SimCLR
      episodes, hierarchies on), and `{name: (configured, used)}` for every value changed.
    """
    if config is None:
        config = sampling.EpisodeDescriptionConfig()
    config = copy.copy(config)
    overrides = {}
    for name, value in _EVALUATION_OVERRIDES.items():
        current = getattr(config, name)
        if current != value:
            overrides[name] = (current, value)
            setattr(config, name, value)
    return config, overrides


def is_official_config(config):
    """True when `config` samples episodes as the official protocol (default values)."""
    return not comparability.episode_config_differences(config)


def config_as_dict(config):
    return {name: getattr(config, name) for name in comparability.SAMPLING_PARAMETERS
            + tuple(_EVALUATION_OVERRIDES)}


def source_seed(seed, source_name):
    """The pipeline seed of one source: a function of `seed` and the source's name only."""
    return None if seed is None else derive_seed(seed, source_name)


def sampling_name(source_name):
    use_dag, use_bilevel = dataset_spec_lib.use_ontologies(source_name)
    return "dag" if use_dag else "bilevel" if use_bilevel else "uniform"


# ----------------------------------------------------------------------------- episodes


def make_predict_fn(learner):
    """`learner`'s compiled `episode -> (logits, support image means, query image means)` on
    the current strategy: the one predict function, `ctx_tf.distribute.make_predict_fn`."""
    return distribute_lib.make_predict_fn(tf.distribute.get_strategy(), learner)


def make_image_means_fn():
    """`episode -> (support image means, query image means)`, as `make_predict_fn` gives
    them (the floor-only evaluation has no learner but the same image digests)."""

    @tf.function(reduce_retracing=True)
    def means(episode):
        return (tf.reduce_mean(episode.support_images, axis=[1, 2, 3]),
                tf.reduce_mean(episode.query_images, axis=[1, 2, 3]))

    return means


def _skip(dataset, count):
    if not count:
        return dataset
    if isinstance(dataset, tf.data.Dataset):
        return dataset.skip(count)  # still draws (and discards) the skipped episodes
    return itertools.islice(dataset, count, None)


def evaluate_source(predict_fn, dataset, num_episodes, source_name="source", progress=None,
                    floor=False, done=(), on_record=None):
    """Per-episode records of `num_episodes` episodes of `dataset`.

    Args:
      predict_fn: `episode -> logits` or `-> (logits, support means, query means)`
        (see `make_predict_fn`); None: the raw-pixel floor is the prediction (floor only).
      dataset: a `tf.data.Dataset` (or any iterable) of `(Episode, source_id)` or `Episode`.
      num_episodes: how many episodes to evaluate.
      progress: a `Progress` (or None).
      floor: also record the raw-pixel nearest-centroid accuracy (`floor_accuracy`).
      done: records of the first episodes, evaluated before (a resumed run): those episodes
        are drawn from `dataset` and discarded, so the next ones are the same as without a
        break.
      on_record: called as `on_record(record, seconds)` after each new episode.
    """
    if num_episodes < 1:
        raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
    records = list(done)[:num_episodes]
    if progress is not None:
        progress.start(source_name, num_episodes, done=records)
    means_fn = make_image_means_fn() if predict_fn is None else None
    start = time.perf_counter()
    for element in itertools.islice(_skip(dataset, len(records)), num_episodes - len(records)):
        episode = element[0] if isinstance(element, tuple) and len(element) == 2 else element
        floor_accuracy = nearest_centroid_accuracy(episode) if floor or means_fn else None
        if means_fn is not None:
            logits = None
            support_means, query_means = (np.asarray(m) for m in means_fn(episode))
        else:
            outputs = predict_fn(episode)
            if isinstance(outputs, (tuple, list)):
                logits, support_means, query_means = (np.asarray(o) for o in outputs)
            else:
                logits, support_means, query_means = np.asarray(outputs), None, None
        # Labels and class ids only: the images stay where they are.
        labels_only = type(episode)(
            support_images=None, support_labels=np.asarray(episode.support_labels),
            support_class_ids=np.asarray(episode.support_class_ids), query_images=None,
            query_labels=np.asarray(episode.query_labels),
            query_class_ids=np.asarray(episode.query_class_ids))
        record = results_lib.episode_record(len(records), labels_only, logits, support_means, query_means,
                                accuracy=floor_accuracy if logits is None else None)
        if floor_accuracy is not None:
            record["floor_accuracy"] = floor_accuracy
        records.append(record)
        now = time.perf_counter()
        if on_record is not None:
            on_record(record, now - start)
        start = now
        if progress is not None:
            progress.update(len(records), record["accuracy"])
    if len(records) < num_episodes:
        raise EvaluationError(f"{source_name}: the episode pipeline ended after {len(records)} "
                              f"of {num_episodes} episodes")
    return records


@dataclasses.dataclass
class EvaluationSetup:
    """What an evaluation run needs besides the learner."""

    records_root: str
    sources: tuple
    split: dataset_spec_lib.Split = dataset_spec_lib.Split.TEST
    num_episodes: int = NUM_EVAL_EPISODES
    seed: int = 0
    image_size: int = 84
    shuffle_buffer_size: int = 1000
    read_buffer_size_bytes: int = None
    num_prefetch: int = 0
    episode_config: object = None
    benchmark: str = benchmark_versions.DEFAULT
    # Several sources as one pipeline drawing each episode's source at random (the official
    # validation of several sources), scored as one entry (`multisource_name`).
    multisource: bool = False


@contextlib.contextmanager
def _global_seed(seed):
    """Builds under TensorFlow's global seed `seed`, then puts the caller's back.

    tf.data combines the global seed with every op seed (the per-class shuffles), so without
    this the episodes would depend on whoever called `tf.random.set_seed` before (training
    does, for its initialization) and validation, the final test and the evaluate CLI would
    see different images for the same protocol seed.
    """
    if seed is None:
        yield
        return
    # (global, op) as ops see it; an unset global seed reads as TensorFlow's default one,
    # which seeded ops treat the same way.
    previous = tf.compat.v1.random.get_seed(0)[0]
    tf.random.set_seed(seed)
    try:
        yield
    finally:
        tf.random.set_seed(previous)


def episode_pipeline(spec, split, episode_config, seed, image_size, shuffle_buffer_size=1000,
                     read_buffer_size_bytes=None, num_prefetch=0):
    """The evaluation episode pipeline of one source (official protocol settings)."""
    use_dag, use_bilevel = dataset_spec_lib.use_ontologies(spec.name)
    seed = source_seed(seed, spec.name)
    with _global_seed(seed):
        return pipeline.make_one_source_episode_pipeline(
            spec, use_dag, use_bilevel, split, episode_config,
            shuffle_buffer_size=shuffle_buffer_size,
            read_buffer_size_bytes=read_buffer_size_bytes, num_prefetch=num_prefetch,
            image_size=image_size, ignore_hierarchy_probability=0.0,
            simclr_episode_fraction=0.0, seed=seed)


def run_identity(setup):
    """What decides the episodes of `setup` (a resume journal's identity, with the model)."""
    config, _ = evaluation_episode_config(setup.episode_config)
    return {"records_root": str(setup.records_root), "sources": list(setup.sources),
            "split": dataset_spec_lib.as_split(setup.split).name,
            "num_episodes": setup.num_episodes, "seed": setup.seed,
            "image_size": setup.image_size, "shuffle_buffer_size": setup.shuffle_buffer_size,
            "episode_config": config_as_dict(config), "multisource": bool(setup.multisource)}


def source_episodes(setup, spec):
    """The evaluation episodes of one source of `setup` (an iterator of `(Episode, source
    id)`): the episodes `evaluate` scores, in the same order; a damaged class file stops it
    with a `RecordsError` naming the file."""
    config, _ = evaluation_episode_config(setup.episode_config)
    split = dataset_spec_lib.as_split(setup.split)
    dataset = episode_pipeline(spec, split, config, setup.seed, setup.image_size,
                               setup.shuffle_buffer_size, setup.read_buffer_size_bytes,
                               setup.num_prefetch)
    return pipeline.iterate(dataset, [spec], split)


def multisource_name(sources):
    """The results entry of a multi-source evaluation: `multisource(a,b,...)`."""
    return f"multisource({','.join(sources)})"


def multisource_episodes(setup, specs):
    """The episodes of every source of `setup` from one pipeline that draws each episode's
    source uniformly at random (seeded by the protocol seed and the sources' names)."""
    config, _ = evaluation_episode_config(setup.episode_config)
    split = dataset_spec_lib.as_split(setup.split)
    flags = [dataset_spec_lib.use_ontologies(spec.name) for spec in specs]
    seed = source_seed(setup.seed, multisource_name(spec.name for spec in specs))
    with _global_seed(seed):
        dataset = pipeline.make_multisource_episode_pipeline(
            specs, [f[0] for f in flags], [f[1] for f in flags], split, config,
            shuffle_buffer_size=setup.shuffle_buffer_size,
            read_buffer_size_bytes=setup.read_buffer_size_bytes,
            num_prefetch=setup.num_prefetch, image_size=setup.image_size,
            simclr_episode_fraction=0.0, seed=seed)
    return pipeline.iterate(dataset, specs, split)


def _streams(setup, specs, episodes_fn, split):
    """`{entry name: (specs, () -> episodes)}`: one entry per source, or one for all of them
    (`setup.multisource`)."""
    if setup.multisource and len(specs) > 1 and episodes_fn is None:
        every = list(specs.values())
        return {multisource_name(specs): (every, lambda: multisource_episodes(setup, every))}
    if episodes_fn is not None:
        return {name: ([], lambda name=name: episodes_fn(
            name, split, source_seed(setup.seed, name))) for name in specs}
    return {name: ([spec], lambda spec=spec: source_episodes(setup, spec))
            for name, spec in specs.items()}


def _evaluate_entry(name, entry_specs, episodes, predict_fn, setup, split, progress, floor,
                    journal):
    """The `results["sources"][name]` entry of one source (or of a multi-source pipeline)."""
    done = journal.records(name) if journal is not None else []
    dataset = () if len(done) >= setup.num_episodes else episodes()  # () : nothing to draw
    on_record = None
    if journal is not None:
        on_record = lambda record, secs: journal.append(name, record, secs)  # noqa: E731
    start = time.perf_counter()
    records = evaluate_source(predict_fn, dataset, setup.num_episodes, name, progress,
                              floor=floor, done=done, on_record=on_record)
    seconds = time.perf_counter() - start + (journal.seconds(name) if done else 0.0)
    info = {}
    if floor:
        info["floor_mean"], info["floor_ci95"] = stats.mean_and_ci95(
            [e["floor_accuracy"] for e in records])
    if len(entry_specs) == 1:
        info["comparability"] = comparability.check_source(name, entry_specs[0],
                                                           split).to_json()
    return results_lib.source_result(
        records, split=split.name,
        sampling="multisource" if len(entry_specs) > 1 else sampling_name(name),
        num_classes=(sum(len(list(spec.get_classes(split))) for spec in entry_specs)
                     if entry_specs else None),
        seconds=round(seconds, 3),
        episodes_per_second=round(len(records) / max(seconds, 1e-9), 4), **info)


def evaluate(learner, setup, progress=None, log=print, predict_fn=None, episodes_fn=None,
             floor=False, floor_only=False, journal=None):
    """Evaluates every source of `setup`; returns the `results.json` mapping (no model info).

    Args:
      learner: called as `learner(episode, training=False)` (see `make_predict_fn`); may be
        None when `predict_fn` is given or `floor_only`.
      setup: an `EvaluationSetup`.
      progress: a `Progress` for the per-source progress lines (None: silent).
      log: where one-line messages go.
      predict_fn: replaces `make_predict_fn(learner)` (training passes its replicated one).
      episodes_fn: `(source name, split, seed) -> iterable of Episode` replaces the records
        (`seed` is the source's protocol seed); then `setup.records_root` is unused.
      floor: also record each episode's raw-pixel nearest-centroid accuracy, and its mean
        and CI per source (`floor_mean`, `floor_ci95`).
      floor_only: no learner: the raw-pixel floor is the evaluated row.
      journal: an `evaluator.Journal`: episodes it holds are not evaluated again, new ones
        are appended to it as they finish.
    """
    split = dataset_spec_lib.as_split(setup.split)
    config, overrides = evaluation_episode_config(setup.episode_config)
    for name, (configured, used) in overrides.items():
        log(f"evaluation uses EpisodeDescriptionConfig.{name} = {used!r} (configured: "
            f"{configured!r})")
    if episodes_fn is None:
        specs = sources_lib.load_sources(setup.records_root, setup.sources, split)
    else:
        specs = {name: None for name in setup.sources}
    for name, spec in specs.items():
        if spec is None:
            continue
        log(f"{name}: {len(list(spec.get_classes(split)))} {split.name} classes in "
            f"{spec.path}, {sampling_name(name)} sampling")
    if journal is not None and journal.resumed:
        log(f"resuming: {journal.resumed} episode(s) already evaluated in {journal.path}")
    if floor_only:
        predict_fn, floor = None, True
    elif predict_fn is None:
        predict_fn = make_predict_fn(learner)
    sources = {}
    for name, (entry_specs, episodes) in _streams(setup, specs, episodes_fn, split).items():
        sources[name] = _evaluate_entry(name, entry_specs, episodes, predict_fn, setup, split,
                                        progress, floor, journal)
        log(f"{name}: {format_accuracy(sources[name]['mean'], sources[name]['ci95'])} "
            f"over {sources[name]['num_episodes']} episodes")
    return {
        "format": results_lib.FORMAT,
        "protocol": {
            "benchmark": setup.benchmark,
            "split": split.name,
            "num_episodes": setup.num_episodes,
            "seed": setup.seed,
            "image_size": setup.image_size,
            "ci95": results_lib.CI95_FORMULA,
            "episode_config": config_as_dict(config),
            "official": bool(is_official_config(config)
                             and setup.num_episodes >= NUM_EVAL_EPISODES),
            "overridden": {k: {"configured": c, "used": u} for k, (c, u) in overrides.items()},
        },
        "sources": sources,
    }
