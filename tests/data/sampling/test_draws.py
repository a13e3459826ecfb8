"""Tests of ctx_tf.data.sampling.draws: each draw of an episode description on its own."""

import math

import numpy as np
import pytest

from ctx_tf.data.sampling import draws


def test_sample_num_ways_uniformly_bounds():
    rng = np.random.RandomState(0)
    ways = [draws.sample_num_ways_uniformly(12, 5, 50, rng) for _ in range(2000)]
    assert min(ways) == 5 and max(ways) == 12
    ways = [draws.sample_num_ways_uniformly(80, 5, 50, rng) for _ in range(2000)]
    assert min(ways) == 5 and max(ways) == 50


def test_sample_class_ids_uniformly():
    rng = np.random.RandomState(1)
    for _ in range(100):
        ids = draws.sample_class_ids_uniformly(7, list(range(3, 20)), rng)
        assert len(set(ids.tolist())) == 7 and all(3 <= i < 20 for i in ids)


def test_compute_num_query():
    assert draws.compute_num_query(np.array([10, 9, 20, 21]), 10, None) == 4
    assert draws.compute_num_query(np.array([100, 200]), 10, None) == 10
    assert draws.compute_num_query(np.array([30, 12]), 10, 5) == 7
    assert draws.compute_num_query(np.array([30, 12]), 10, (1, 8)) == 4
    with pytest.raises(ValueError, match="at least 2 images"):
        draws.compute_num_query(np.array([10, 1]), 10, None)
    with pytest.raises(ValueError, match="at least 9 images"):
        draws.compute_num_query(np.array([10, 8]), 10, 8)


def test_sample_support_set_size():
    rng = np.random.RandomState(2)
    remaining = np.array([90, 90, 90, 90, 900, 900, 900])
    sizes = [draws.sample_support_set_size(remaining, 100, 500, rng) for _ in range(500)]
    assert max(sizes) <= 500 and min(sizes) >= len(remaining)
    assert max(sizes) == 500  # the cap is reached for large beta
    with pytest.raises(ValueError, match="smaller than the 7 ways"):
        draws.sample_support_set_size(remaining, 100, 6, rng)


def test_sample_num_support_per_class():
    rng = np.random.RandomState(3)
    images = np.array([50, 20, 300, 7])
    remaining = images - 3
    for size in [4, 10, 60, 300]:
        shots = draws.sample_num_support_per_class(images, remaining, size, math.log(0.5),
                                                   math.log(2), rng)
        assert shots.sum() <= size and shots.min() >= 1 and np.all(shots <= remaining)
    with pytest.raises(ValueError, match="smaller than the 4 ways"):
        draws.sample_num_support_per_class(images, remaining, 3, -0.6, 0.6, rng)
    with pytest.raises(ValueError, match="no image left"):
        draws.sample_num_support_per_class(images, np.array([3, 0, 3, 3]), 10, -0.6, 0.6,
                                           rng)
