"""The official Meta-Dataset test protocol, run on a learner (protocol §6).

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
import hashlib
import inspect
import itertools
import os
import time

import numpy as np
import tensorflow as tf

from ctx_tf.data import dataset_spec as dataset_spec_lib
from ctx_tf.data import pipeline
from ctx_tf.data import sampling
from ctx_tf.evaluation import leaderboard
from ctx_tf.evaluation import results as results_lib
from ctx_tf.evaluation import stats
from ctx_tf.evaluation.floor import nearest_centroid_accuracy
from ctx_tf.seeds import derive_seed
from ctx_tf.training import step as step_lib

NUM_EVAL_EPISODES = 600

# Parameters that define which episodes are sampled; the official protocol uses their defaults.
_SAMPLING_PARAMETERS = (
    "num_ways", "num_support", "num_query", "min_ways", "max_ways_upper_bound", "max_num_query",
    "max_support_set_size", "max_support_size_contrib_per_class", "min_log_weight",
    "max_log_weight", "min_examples_in_class", "num_unique_descriptions",
    "episode_description_switch_frequency",
)
# Forced for evaluation, whatever the (training) gin config binds.
_EVALUATION_OVERRIDES = {
    "ignore_hierarchy_probability": 0.0,
    "simclr_episode_fraction": 0.0,
    "ignore_dag_ontology": False,
    "ignore_bilevel_ontology": False,
}


class EvaluationError(ValueError):
    """Evaluation cannot run as asked (unknown source, split without classes, ...)."""


# ------------------------------------------------------------------------- configuration


def _config_defaults():
    signature = inspect.signature(sampling.EpisodeDescriptionConfig.__init__)
    return {name: p.default for name, p in signature.parameters.items() if name != "self"}


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
    defaults = _config_defaults()
    return all(getattr(config, name) == defaults[name] for name in _SAMPLING_PARAMETERS)


def config_as_dict(config):
    return {name: getattr(config, name) for name in _SAMPLING_PARAMETERS
            + tuple(_EVALUATION_OVERRIDES)}


def source_seed(seed, source_name):
    """The pipeline seed of one source: a function of `seed` and the source's name only."""
    return None if seed is None else derive_seed(seed, source_name)


def sampling_name(source_name):
    use_dag, use_bilevel = dataset_spec_lib.use_ontologies(source_name)
    return "dag" if use_dag else "bilevel" if use_bilevel else "uniform"


# ------------------------------------------------------------------------------ sources


def _join(root, name):
    root = str(root)
    return f"{root.rstrip('/')}/{name}" if "://" in root else os.path.join(root, name)


def _available_sources(records_root):
    try:
        entries = tf.io.gfile.listdir(str(records_root))
    except tf.errors.NotFoundError:
        return None
    found = []
    for entry in sorted(entries):
        name = entry.rstrip("/")
        if tf.io.gfile.exists(_join(_join(records_root, name),
                                    dataset_spec_lib.SPEC_FILENAME)):
            found.append(name)
    return found


def load_sources(records_root, source_names, split):
    """`{name: dataset_spec}` for every source, checked before any episode is drawn.

    Raises:
      EvaluationError: unknown source (no `<records_root>/<name>/dataset_spec.json`), a
        source listed twice, or a source whose `split` has no classes (e.g. ilsvrc_2012_v2,
        or traffic_sign for VALID).
    """
    split = dataset_spec_lib.as_split(split)
    if not source_names:
        raise EvaluationError("no source to evaluate; pass --datasets=name1,name2,...")
    duplicates = sorted({s for s in source_names if list(source_names).count(s) > 1})
    if duplicates:
        raise EvaluationError(f"sources listed more than once: {duplicates}")
    specs = {}
    available = None
    for name in source_names:
        directory = _join(records_root, name)
        if not tf.io.gfile.exists(_join(directory, dataset_spec_lib.SPEC_FILENAME)):
            if available is None:
                available = _available_sources(records_root)
            if available is None:
                raise EvaluationError(f"records root {records_root} does not exist")
            known = ", ".join(leaderboard.TEST_SOURCES)
            raise EvaluationError(
                f"unknown source {name!r}: no {directory}/{dataset_spec_lib.SPEC_FILENAME}. "
                f"Sources under {records_root}: {', '.join(available) or 'none'}. "
                f"Meta-Dataset test sources: {known}")
        spec = dataset_spec_lib.load_dataset_spec(directory)
        classes = list(spec.get_classes(split))
        if not classes:
            counts = ", ".join(f"{s.name} {len(list(spec.get_classes(s)))}"
                               for s in dataset_spec_lib.Split)
            raise EvaluationError(
                f"source {name!r} has no {split.name} classes ({counts} classes in "
                f"{directory}/{dataset_spec_lib.SPEC_FILENAME}); evaluate it on another split "
                "or leave it out")
        specs[name] = spec
    return specs


# ----------------------------------------------------------------------------- episodes


def make_predict_fn(learner):
    """`learner`'s compiled `episode -> (logits, support image means, query image means)` on
    the current strategy: the one predict function, `ctx_tf.training.step.make_predict_fn`."""
    return step_lib.make_predict_fn(tf.distribute.get_strategy(), learner)


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


def episode_record(index, episode, logits, support_means=None, query_means=None):
    """The per-episode row of results.json for one evaluated episode (numpy inputs)."""
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
        "accuracy": stats.episode_accuracy(logits, query_labels),
        "fingerprint": episode_fingerprint(support_labels, episode.support_class_ids,
                                           query_labels, episode.query_class_ids),
    }
    if support_means is not None:
        record["image_digest"] = image_digest(support_means, query_means)
    return record


def evaluate_source(predict_fn, dataset, num_episodes, source_name="source", progress=None,
                    floor=False):
    """Per-episode records of `num_episodes` episodes of `dataset`.

    Args:
      predict_fn: `episode -> logits` or `-> (logits, support means, query means)`
        (see `make_predict_fn`).
      dataset: a `tf.data.Dataset` (or any iterable) of `(Episode, source_id)` or `Episode`.
      num_episodes: how many episodes to evaluate.
      progress: a `Progress` (or None).
      floor: also record the raw-pixel nearest-centroid accuracy (`floor_accuracy`).
    """
    if num_episodes < 1:
        raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
    if progress is not None:
        progress.start(source_name, num_episodes)
    records = []
    for element in itertools.islice(dataset, num_episodes):
        episode = element[0] if isinstance(element, tuple) and len(element) == 2 else element
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
        record = episode_record(len(records), labels_only, logits, support_means, query_means)
        if floor:
            record["floor_accuracy"] = nearest_centroid_accuracy(episode)
        records.append(record)
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


def evaluate(learner, setup, progress=None, log=print, predict_fn=None, episodes_fn=None,
             floor=False):
    """Evaluates every source of `setup`; returns the `results.json` mapping (no model info).

    Args:
      learner: called as `learner(episode, training=False)` (see `make_predict_fn`); may be
        None when `predict_fn` is given.
      setup: an `EvaluationSetup`.
      progress: a `Progress` for the per-source progress lines (None: silent).
      log: where one-line messages go.
      predict_fn: replaces `make_predict_fn(learner)` (training passes its replicated one).
      episodes_fn: `(source name, split, seed) -> iterable of Episode` replaces the records
        (`seed` is the source's protocol seed); then `setup.records_root` is unused.
      floor: also record each episode's raw-pixel nearest-centroid accuracy.
    """
    split = dataset_spec_lib.as_split(setup.split)
    config, overrides = evaluation_episode_config(setup.episode_config)
    for name, (configured, used) in overrides.items():
        log(f"evaluation uses EpisodeDescriptionConfig.{name} = {used!r} (configured: "
            f"{configured!r})")
    if episodes_fn is None:
        specs = load_sources(setup.records_root, list(setup.sources), split)
    else:
        specs = {name: None for name in setup.sources}
    for name, spec in specs.items():
        if spec is None:
            continue
        log(f"{name}: {len(list(spec.get_classes(split)))} {split.name} classes in "
            f"{spec.path}, {sampling_name(name)} sampling")
    if predict_fn is None:
        predict_fn = make_predict_fn(learner)
    sources = {}
    for name, spec in specs.items():
        if spec is None:
            dataset = episodes_fn(name, split, source_seed(setup.seed, name))
        else:
            dataset = episode_pipeline(spec, split, config, setup.seed, setup.image_size,
                                       setup.shuffle_buffer_size, setup.read_buffer_size_bytes,
                                       setup.num_prefetch)
        start = time.perf_counter()
        records = evaluate_source(predict_fn, dataset, setup.num_episodes, name, progress,
                                  floor=floor)
        seconds = time.perf_counter() - start
        sources[name] = results_lib.source_result(
            records, split=split.name, sampling=sampling_name(name),
            num_classes=None if spec is None else len(list(spec.get_classes(split))),
            seconds=round(seconds, 3),
            episodes_per_second=round(len(records) / max(seconds, 1e-9), 4))
        log(f"{name}: {100 * sources[name]['mean']:.2f} ± {100 * sources[name]['ci95']:.2f}% "
            f"over {len(records)} episodes")
    return {
        "format": results_lib.FORMAT,
        "protocol": {
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
