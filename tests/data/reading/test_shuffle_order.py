"""The Python shuffle orders are TensorFlow's, and the episode generator runs no TensorFlow."""

import itertools
import sys

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from ctx_tf.data import sampling
from ctx_tf.data.dataset_spec import Split
from ctx_tf.data.reading import episode_reader as reader_lib
from ctx_tf.data.reading.shuffle_order import ShuffleOrders, philox_block, tf_seed_pair
from tests.data.helpers import write_tiny_source


def _words(*words):
    return sum(word << (32 * i) for i, word in enumerate(words))


def test_philox_matches_the_published_known_answers():
    # Philox4x32-10 known-answer vectors of the Random123 distribution.
    assert philox_block(0, 0) == (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)
    assert philox_block(2**128 - 1, 2**64 - 1) == (0x408F276D, 0x41C83B0E, 0xA20BC7C6,
                                                     0x6D5451FD)
    assert philox_block(_words(0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
                        _words(0xA4093822, 0x299F31D0)) == (0xD16CFE09, 0x94FDCCEB,
                                                             0x5001E420, 0x24126EA1)


def test_seed_pair_follows_tensorflow_conventions():
    assert tf_seed_pair(5, None) == (87654321, 5)
    assert tf_seed_pair(2**31 + 3, 7) == (7, 4)
    assert tf_seed_pair(0, 0) == (0, 2**31 - 1)
    assert tf_seed_pair(2**31 - 1, 2**31 - 1) == (0, 2**31 - 1)


def test_epochs_are_permutations_and_unseeded_orders_vary():
    orders = ShuffleOrders(50, 20, None)
    epochs = list(itertools.islice(iter(orders), 3))
    assert all(sorted(epoch) == list(range(50)) for epoch in epochs)
    other = next(iter(ShuffleOrders(50, 20, None)))
    assert other != epochs[0]


def _tf_shuffle(n, buffer_size, seed, read_ahead=True):
    dataset = tf.data.Dataset.range(n).shuffle(buffer_size, seed=seed,
                                               reshuffle_each_iteration=True).repeat()
    if not read_ahead:
        options = tf.data.Options()
        options.experimental_optimization.inject_prefetch = False
        dataset = dataset.with_options(options)
    return dataset


def _take(iterable, count):
    return [int(x) for x in itertools.islice(iterable, count)]


@pytest.mark.compat
@given(n=st.integers(1, 60), buffer_fraction=st.floats(0.0, 3.0),
       seed=st.integers(-2**40, 2**40),
       global_seed=st.one_of(st.none(), st.integers(0, 2**40)),
       epochs=st.integers(3, 4))
@settings(max_examples=40, deadline=None)
def test_orders_match_tensorflow_shuffle(n, buffer_fraction, seed, global_seed, epochs):
    # Buffers below and above n; TensorFlow's default options for one iteration, then
    # further iterations of a fresh dataset without read-ahead (see shuffle_order).
    buffer_size = max(1, round(buffer_fraction * n))
    tf.random.set_seed(global_seed)
    try:
        expected = _take(_tf_shuffle(n, buffer_size, seed), epochs * n)
        got = _take(itertools.chain.from_iterable(
            ShuffleOrders(n, buffer_size, seed, global_seed)), epochs * n)
        assert got == expected
        dataset = _tf_shuffle(n, buffer_size, seed, read_ahead=False)
        orders = ShuffleOrders(n, buffer_size, seed, global_seed)
        for iteration_epochs in (1, epochs, 2):
            expected = _take(iter(dataset), iteration_epochs * n)
            got = _take(itertools.chain.from_iterable(orders), iteration_epochs * n)
            assert got == expected
    finally:
        tf.random.set_seed(None)


@pytest.fixture(scope="module")
def small_source(tmp_path_factory):
    root = tmp_path_factory.mktemp("records")
    return write_tiny_source(root, "small", [8, 12, 16, 9, 11, 10], (6, 0, 0), images="bands",
                             fmt="PNG")


def _tensorflow_calls(run):
    """Runs `run()`; returns the names of the TensorFlow Python functions it called."""
    calls = []

    def profile(frame, event, _):
        if event == "call" and frame.f_globals.get("__name__", "").startswith("tensorflow"):
            calls.append(f"{frame.f_globals['__name__']}.{frame.f_code.co_name}")

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return calls


def test_episode_generator_runs_no_tensorflow(small_source):
    config = sampling.EpisodeDescriptionConfig(num_ways=3, num_support=2, num_query=2)
    sampler = sampling.EpisodeDescriptionSampler(small_source, Split.TRAIN, config, rng=0)
    descriptions = sampling.DescriptionSource(sampler, rng=np.random.RandomState(0))
    episode_reader = reader_lib.EpisodeReader(small_source, Split.TRAIN, shuffle_buffer_size=5,
                                              class_seeds=list(range(6)))
    episodes = episode_reader.episodes(descriptions, sampler.compute_chunk_sizes())
    got = []
    calls = _tensorflow_calls(lambda: got.extend(itertools.islice(episodes, 8)))
    assert not calls, f"the episode generator called TensorFlow: {sorted(set(calls))[:5]}"
    records, class_ids, indices = got[-1]
    assert len(records) == len(class_ids) == len(indices)
    assert any(record for record, class_id in zip(records, class_ids) if class_id >= 0)
    # The profile does see TensorFlow calls.
    assert _tensorflow_calls(lambda: tf.constant(1))
