"""Tests of ctx_tf.data.simclr: SimCLR episodes (conversion, fraction, seeds).

Statistical checks draw a fresh seed per run (printed on failure) and use 5-sigma binomial
bounds, so a correct implementation fails them with probability < 1e-6 per check.
"""

import itertools

import gin
import numpy as np
import pytest
import tensorflow as tf

from ctx_tf.data import simclr
from ctx_tf.data.episode import Episode
from ctx_tf.data.simclr import seed_pairs
from tests.data.simclr.helpers import colourful, make_episode, seed_pair, within_5_sigma


# ----------------------------------------------------------------------------------------------
# Synthetic episodes
# ----------------------------------------------------------------------------------------------


def _reference_sources(support_labels, query_labels):
    """Spec 4.1 literally: keep support images whose (label, rank) uid also occurs in the query."""
    def uids(labels):
        seen = {}
        out = []
        for label in labels:
            seen[label] = seen.get(label, 0) + 1
            out.append(int(label) * 10000 + seen[label])
        return out

    query_uids = set(uids(query_labels))
    return [i for i, uid in enumerate(uids(support_labels)) if uid in query_uids]


def _check_simclr_structure(original, converted):
    original = Episode(*[np.asarray(t) for t in original])
    converted = Episode(*[np.asarray(t) for t in converted])
    num_support = len(original.support_labels)
    sources = _reference_sources(original.support_labels, original.query_labels)
    # #queries = sum_c min(k_c, s_c).
    shots = np.bincount(original.support_labels)
    queries = np.bincount(original.query_labels, minlength=len(shots))
    assert len(sources) == int(np.minimum(shots, queries).sum())
    np.testing.assert_array_equal(converted.support_labels, np.arange(num_support))
    np.testing.assert_array_equal(converted.support_class_ids, original.support_class_ids)
    np.testing.assert_array_equal(converted.query_labels, sources)
    np.testing.assert_array_equal(
        converted.query_class_ids, original.support_class_ids[sources]
    )
    assert converted.support_labels.dtype == np.int32
    assert converted.query_labels.dtype == np.int32
    assert converted.support_class_ids.dtype == np.int64
    assert converted.query_class_ids.dtype == np.int64
    return sources


@pytest.mark.compat
def test_conversion_labels_and_copies_unequal_shots():
    # Class 1 has fewer supports (1) than queries (3); class 2 has more supports than queries.
    shots, queries, class_ids = [3, 1, 4, 2], [2, 3, 1, 2], [40, 7, 123, 5]
    episode = make_episode(shots, queries, class_ids)
    converted = simclr.to_simclr_episode(episode, augment=False)
    sources = _check_simclr_structure(episode, converted)
    # First k_c support images of each class, in support order.
    assert sources == [0, 1, 3, 4, 8, 9]
    # Query i is an unaugmented copy of support image query_labels[i].
    np.testing.assert_array_equal(
        converted.query_images.numpy(), episode.support_images[sources]
    )
    np.testing.assert_array_equal(converted.support_images.numpy(), episode.support_images)


def test_conversion_random_episodes_in_tf_data_graph_mode(rng_seed):
    """Dynamic Ns / Nq inside Dataset.map, against the literal uid rule of the spec."""
    rng = np.random.default_rng(rng_seed)
    episodes = []
    for _ in range(12):
        way = int(rng.integers(1, 7))
        shots = rng.integers(1, 6, size=way)
        queries = rng.integers(1, 6, size=way)
        class_ids = rng.choice(1000, size=way, replace=False)
        episodes.append(make_episode(shots, queries, class_ids, size=8, rng=rng))

    spec = Episode(
        tf.TensorSpec([None, 8, 8, 3], tf.float32),
        tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([None], tf.int64),
        tf.TensorSpec([None, 8, 8, 3], tf.float32),
        tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([None], tf.int64),
    )
    ds = tf.data.Dataset.from_generator(lambda: iter(episodes), output_signature=spec)
    ds = ds.map(lambda e: simclr.to_simclr_episode(e, augment=False))
    assert ds.element_spec.query_images.shape.as_list() == [None, 8, 8, 3]
    for original, converted in zip(episodes, ds):
        sources = _check_simclr_structure(original, converted)
        np.testing.assert_array_equal(
            converted.query_images.numpy(), original.support_images[sources]
        )


def test_augmented_conversion(rng_seed):
    shots, queries, class_ids = [3, 1, 4, 2], [2, 3, 1, 2], [40, 7, 123, 5]
    rng = np.random.default_rng(rng_seed)
    episode = make_episode(shots, queries, class_ids, size=28)
    # Textured images so that crops and colour changes are visible.
    images = rng.uniform(-1, 1, size=episode.support_images.shape).astype(np.float32)
    episode = episode._replace(support_images=images)
    converted = simclr.to_simclr_episode(episode, seed=seed_pair(rng_seed))
    sources = _check_simclr_structure(episode, converted)
    support = converted.support_images.numpy()
    query = converted.query_images.numpy()
    assert support.shape == images.shape and query.shape == (len(sources), 28, 28, 3)
    assert support.dtype == np.float32 and query.dtype == np.float32
    for x in (support, query):
        assert x.min() >= -1.0 and x.max() <= 1.0
    # Both copies are augmented, independently.
    assert np.all(np.abs(support - images).reshape(len(images), -1).max(axis=1) > 1e-3)
    assert np.all(np.abs(query - support[sources]).reshape(len(query), -1).max(axis=1) > 1e-3)


# ----------------------------------------------------------------------------------------------
# maybe_convert_to_simclr
# ----------------------------------------------------------------------------------------------


def _count_conversions(fraction, num_episodes, seed_fn, augment=False):
    # Two classes x two shots: a converted episode has 4 support labels 0..3.
    episode = make_episode([2, 2], [1, 1], [3, 8], size=8)
    ds = tf.data.Dataset.from_tensors(tuple(episode)).repeat(num_episodes)
    ds = ds.enumerate().map(
        lambda i, e: simclr.maybe_convert_to_simclr(
            Episode(*e), fraction, seed=seed_fn(i), augment=augment
        )
    )
    ds = ds.map(lambda e: tf.reduce_max(e.support_labels) == 3)
    return int(np.sum(list(ds.as_numpy_iterator())))


def test_fraction_zero_and_one(rng_seed):
    def seed_fn(i):
        return seed_pairs.episode_seed(rng_seed, i)

    n = 100
    assert _count_conversions(tf.constant(0.0), n, seed_fn) == 0
    assert _count_conversions(0.0, n, seed_fn) == 0
    assert _count_conversions(1.0, n, seed_fn) == n
    # With the augmentation in the converted branch (the TF1 Grappler caveat does not apply).
    assert _count_conversions(tf.constant(1.0), 10, seed_fn, augment=True) == 10


def test_fraction_half_seeded_and_unseeded(rng_seed):
    n = 400
    seeded = _count_conversions(0.5, n, lambda i: seed_pairs.episode_seed(rng_seed, i))
    assert within_5_sigma(seeded, n, 0.5), seeded
    tf.random.set_seed(rng_seed)
    try:
        unseeded = _count_conversions(0.5, n, lambda i: None)
    finally:
        tf.random.set_seed(None)  # later tests' pipelines read the global seed
    assert within_5_sigma(unseeded, n, 0.5), unseeded
    quarter = _count_conversions(0.25, n, lambda i: seed_pairs.episode_seed(rng_seed + 1, i))
    assert within_5_sigma(quarter, n, 0.25), quarter


def test_pipeline_level_int_seed_is_a_stream(rng_seed):
    """An int seed inside Dataset.map: different per episode, same on every iteration."""
    n = 400
    episode = make_episode([2, 2], [1, 1], [3, 8], size=8)
    ds = tf.data.Dataset.from_tensors(tuple(episode)).repeat(n)
    ds = ds.map(lambda *e: simclr.maybe_convert_to_simclr(Episode(*e), 0.5, seed=rng_seed,
                                                          augment=False))
    ds = ds.map(lambda e: tf.reduce_max(e.support_labels) == 3)
    first = np.array(list(ds.as_numpy_iterator()))
    second = np.array(list(ds.as_numpy_iterator()))
    np.testing.assert_array_equal(first, second)
    assert within_5_sigma(int(first.sum()), n, 0.5)


def test_maybe_convert_keeps_structure_types():
    episode = make_episode([2, 3], [2, 2], [3, 8], size=8)
    out = simclr.maybe_convert_to_simclr(episode, 0.0)
    for a, b in zip(out, episode):
        np.testing.assert_array_equal(a.numpy(), b)
    assert out.support_labels.dtype == tf.int32 and out.query_class_ids.dtype == tf.int64


def test_seeded_pipeline_reproducible(rng_seed):
    episode = make_episode([2, 3], [2, 2], [3, 8], size=16)
    ds = tf.data.Dataset.from_tensors(tuple(episode)).repeat(8)
    ds = ds.enumerate().map(
        lambda i, e: simclr.maybe_convert_to_simclr(
            Episode(*e), 0.5, seed=seed_pairs.episode_seed(rng_seed, i)
        )
    )
    first = list(ds.as_numpy_iterator())
    second = list(ds.as_numpy_iterator())
    for a, b in zip(first, second):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    # Different episodes (seeds) of the same input get different augmentations.
    converted = [e for e in first if len(e.support_labels) == 5 and e.support_labels[1] == 1]
    for a, b in itertools.combinations(converted, 2):
        assert np.abs(a.support_images - b.support_images).max() > 1e-3


def test_seeded_conversion_reproducible(rng_seed):
    episode = make_episode([2, 3], [2, 2], [3, 8], size=28)
    x = simclr.to_simclr_episode(episode, seed=seed_pair(rng_seed))
    y = simclr.to_simclr_episode(episode, seed=seed_pair(rng_seed))
    for u, v in zip(x, y):
        np.testing.assert_array_equal(u.numpy(), v.numpy())
    z = simclr.to_simclr_episode(episode, seed=seed_pair(rng_seed, 1))
    assert np.abs(x.support_images.numpy() - z.support_images.numpy()).max() > 1e-3


def test_gin_color_jitter_strength_reaches_the_conversion(rng_seed):
    # 28 px and the default flags: shares compiled graphs with the other tests.
    episode = make_episode([2, 3], [2, 2], [3, 8], size=28)
    episode = episode._replace(support_images=colourful(size=28, n=5))
    try:
        gin.parse_config("simclr_augment.color_jitter_strength = 0.0")
        via_gin = simclr.to_simclr_episode(episode, seed=seed_pair(rng_seed))
    finally:
        gin.clear_config()
    explicit = simclr.to_simclr_episode(
        episode, color_jitter_strength=0.0, seed=seed_pair(rng_seed)
    )
    default = simclr.to_simclr_episode(episode, seed=seed_pair(rng_seed))
    np.testing.assert_array_equal(via_gin.support_images.numpy(), explicit.support_images.numpy())
    assert np.abs(default.support_images.numpy() - explicit.support_images.numpy()).max() > 1e-3
