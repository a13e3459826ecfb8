"""The raw-pixel floor: float32, chunked, bounded memory, the float64 decisions."""

import tracemalloc

import numpy as np
import pytest

from ctx_tf.data.episode import Episode
from ctx_tf.evaluation import floor


def reference_predictions(episode):
    """The float64 implementation the floor replaced (a query x class x pixel tensor)."""
    support = np.asarray(episode.support_images, np.float64)
    query = np.asarray(episode.query_images, np.float64)
    labels = np.asarray(episode.support_labels)
    support = support.reshape(len(support), -1)
    query = query.reshape(len(query), -1)
    way = int(labels.max()) + 1
    centroids = np.stack([support[labels == c].mean(axis=0) for c in range(way)])
    return ((query[:, None, :] - centroids[None]) ** 2).sum(axis=-1).argmin(axis=1)


def make_episode(rng, way, shots, queries_per_class, size, spread=0.3):
    """Classes around random colours in [-1, 1] (as the pipeline's images)."""
    centres = rng.uniform(-1, 1, size=(way, 1, 1, 3))
    support_labels = np.concatenate([np.full(s, c) for c, s in enumerate(shots)])
    query_labels = np.repeat(np.arange(way), queries_per_class)

    def images(labels):
        noise = rng.standard_normal((len(labels), size, size, 3), dtype=np.float32)
        return np.clip(centres[labels].astype(np.float32) + np.float32(spread) * noise, -1, 1)

    return Episode(support_images=images(support_labels), support_labels=support_labels,
                   support_class_ids=support_labels + 100, query_images=images(query_labels),
                   query_labels=query_labels, query_class_ids=query_labels + 100)


def _accuracy(predictions, episode):
    return float((predictions == episode.query_labels).mean())


def test_random_episodes_give_the_float64_answers(rng_seed):
    rng = np.random.default_rng(rng_seed)
    for _ in range(8):
        way = int(rng.integers(2, 12))
        shots = rng.integers(1, 6, size=way)
        episode = make_episode(rng, way, shots, int(rng.integers(1, 4)),
                               int(rng.integers(4, 40)), spread=float(rng.uniform(0.1, 1.5)))
        want = reference_predictions(episode)
        np.testing.assert_array_equal(floor.nearest_centroid_predictions(episode), want)
        assert floor.nearest_centroid_accuracy(episode) == _accuracy(want, episode)


def test_ties_and_near_ties_are_decided_as_in_float64(monkeypatch):
    rng = np.random.default_rng(0)
    episode = make_episode(rng, 4, [3, 3, 2, 2], 3, 16)
    support = episode.support_images.copy()
    support[3:6] = support[0:3]  # class 1 is a copy of class 0: exact ties, lowest label wins
    query = episode.query_images.copy()
    c2 = support[6:8].astype(np.float64).mean(axis=0)
    c3 = support[8:10].astype(np.float64).mean(axis=0)
    # Queries a hair from the midpoint of classes 2 and 3: float32 scores cannot separate
    # them, float64 distances can.
    direction = (c3 - c2) / np.linalg.norm(c3 - c2)
    for i, eps in zip(range(6, 12), (1e-6, -1e-6, 3e-7, -3e-7, 2e-5, -2e-5)):
        query[i] = ((c2 + c3) / 2 + eps * direction).astype(np.float32)
    query[0] = support[0:3].mean(axis=0)  # exactly on the tied centroid
    episode = episode._replace(support_images=support, query_images=query)
    calls = []
    class_mean64 = floor._class_mean64
    monkeypatch.setattr(floor, "_class_mean64", lambda *a: calls.append(a[2]) or class_mean64(*a))
    want = reference_predictions(episode)
    got = floor.nearest_centroid_predictions(episode)
    np.testing.assert_array_equal(got, want)
    assert got[0] == 0 and 1 not in got  # classes 0 and 1 tie everywhere; label 0 wins
    assert set(got[6:12]) == {2, 3}
    assert len(calls) > 4  # the close calls were decided again in float64


@pytest.mark.parametrize("offset", [0.0, 200.0])
def test_uncentred_pixels_keep_the_answers(offset, rng_seed):
    # Large common offsets cancel in float32 when not centred first.
    rng = np.random.default_rng(rng_seed)
    episode = make_episode(rng, 6, [4] * 6, 3, 24, spread=2.0)
    episode = episode._replace(support_images=episode.support_images + np.float32(offset),
                               query_images=episode.query_images + np.float32(offset))
    np.testing.assert_array_equal(floor.nearest_centroid_predictions(episode),
                                  reference_predictions(episode))


def test_a_224_pixel_50_way_episode_costs_tens_of_megabytes():
    rng = np.random.default_rng(1)
    way, size = 50, 224
    episode = make_episode(rng, way, [2] * way, 2, size, spread=0.5)  # 100 support, 100 queries
    pixels = size * size * 3
    tracemalloc.start()
    try:
        predictions = floor.nearest_centroid_predictions(episode)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The replaced implementation held a float64 query x class x pixel tensor: 6 GB here.
    assert 100 * way * pixels * 8 > 6e9
    assert peak < 64 * 2 ** 20, f"peak {peak / 2 ** 20:.1f} MiB"
    # The float64 decisions, one query at a time (the reference tensor does not fit), on a
    # quarter of the queries to keep the test short.
    support = episode.support_images.reshape(len(episode.support_images), -1)
    centroids = np.stack([support[episode.support_labels == c].astype(np.float64).mean(axis=0)
                          for c in range(way)])
    query = episode.query_images.reshape(len(episode.query_images), -1)
    want = [((q.astype(np.float64) - centroids) ** 2).sum(axis=1).argmin() for q in query[::4]]
    np.testing.assert_array_equal(predictions[::4], want)
