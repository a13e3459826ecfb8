"""Reader: per-class streams, the flush | support | query id stream, no duplicates."""

import numpy as np
import pytest
import tensorflow as tf

from ctx_tf.data import sampling
from ctx_tf.data.dataset_spec import Split
from ctx_tf.data.reading import class_files
from ctx_tf.data.reading import episode_reader as reader_lib
from tests.data.helpers import band_image, encode, example, write_tiny_source

# ----------------------------------------------------------------------------- fixtures
# Band sources (tests/data/helpers.py): each image shows its class id and record index.


def class_stream(path, class_id, num_images, shuffle_buffer_size=None, num_to_take=-1,
                 shuffle_seed=None):
    """The official per-class stream in tf.data, the reference `ClassRecords` must follow:
    `((record_index, record), class_id)` elements of the file's records -> `take` -> shuffle
    (buffer `min(n, shuffle_buffer_size)`, only if > 1) -> `repeat()`."""
    expected = class_files.effective_num_images(num_images, num_to_take)
    records = tf.data.TFRecordDataset(path)
    if num_to_take is not None and num_to_take >= 0:
        records = records.take(num_to_take)
    records = records.apply(tf.data.experimental.assert_cardinality(expected))
    records = tf.data.Dataset.zip(
        (records.enumerate(),
         tf.data.Dataset.from_tensors(tf.constant(class_id, tf.int64)).repeat()))
    if shuffle_buffer_size and min(expected, shuffle_buffer_size) > 1:
        records = records.shuffle(min(expected, shuffle_buffer_size), seed=shuffle_seed,
                                  reshuffle_each_iteration=True)
    return records.repeat()


def config(**kwargs):
    return sampling.EpisodeDescriptionConfig(**kwargs)


def raw_episodes(spec, split, episode_config, num_episodes, shuffle_buffer_size=0, seed=0,
                 class_seeds=None):
    sampler = sampling.EpisodeDescriptionSampler(spec, split, episode_config, rng=seed)
    descriptions = sampling.DescriptionSource(
        sampler, episode_config.episode_description_switch_frequency,
        episode_config.num_unique_descriptions, rng=np.random.RandomState(seed))
    chunk_sizes = sampler.compute_chunk_sizes()
    episode_reader = reader_lib.EpisodeReader(
        spec, split, shuffle_buffer_size=shuffle_buffer_size, class_seeds=class_seeds)
    dataset = episode_reader.episode_dataset(descriptions, chunk_sizes)
    out = []
    for records, class_ids, indices in dataset.take(num_episodes):
        out.append((records.numpy(), class_ids.numpy(), indices.numpy()))
    return out, chunk_sizes


def split_chunks(array, chunk_sizes):
    f, s, _ = chunk_sizes
    return array[:f], array[f:f + s], array[f + s:]


@pytest.fixture(scope="module")
def flush_source(tmp_path_factory):
    # The official reader test's toy: 30 classes of 10 + i images, all in TRAIN.
    root = tmp_path_factory.mktemp("records")
    return write_tiny_source(root, "flush", [10 + i for i in range(30)], (30, 0, 0),
                             images="bands")


@pytest.fixture(scope="module")
def toy_source(tmp_path_factory):
    # Counts cycle 10, 20, 30 as in the official sampler/reader tests; splits 15 / 5 / 10.
    root = tmp_path_factory.mktemp("records")
    return write_tiny_source(root, "toy", [10, 20, 30] * 10, (15, 5, 10), images="bands")


# ----------------------------------------------------------------------------- id stream


class _FixedSampler:
    def __init__(self, descriptions):
        self.descriptions = list(descriptions)

    def sample_episode_description(self):
        return self.descriptions.pop(0)


def test_id_stream_layout_and_flush_counts():
    descriptions = [((0, 3, 2), (1, 4, 2)), ((0, 4, 2), (1, 1, 1)), ((1, 2, 2),)]
    stream = reader_lib.EpisodeIdStream(
        sampling.DescriptionSource(_FixedSampler(descriptions)), [8, 9], (20, 10, 10))
    first, second, third = (stream.next_episode() for _ in range(3))
    # placeholder index = 2; each chunk ends with a (possibly empty) placeholder entry.
    assert first.tolist() == [[2, 20], [0, 3], [1, 4], [2, 3], [0, 2], [1, 2], [2, 6]]
    # class 0 has 3 left (< 6): flushed; class 1 has 3 left, needs 2: not flushed.
    assert second.tolist() == [[0, 3], [2, 17], [0, 4], [1, 1], [2, 5], [0, 2], [1, 1],
                               [2, 7]]
    # class 1: 1 left, needs 4 -> flush 1.
    assert third.tolist() == [[1, 1], [2, 19], [1, 2], [2, 8], [1, 2], [2, 8]]
    for pairs in (first, second, third):
        assert pairs[:, 1].sum() == 40


def test_id_stream_rejects_oversized_requests():
    stream = reader_lib.EpisodeIdStream(
        sampling.DescriptionSource(_FixedSampler([((0, 5, 5),)])), [8], (20, 10, 10),
        where="toy split TRAIN", class_ids=[42])
    with pytest.raises(reader_lib.ReaderError, match="class id 42 .* has only 8"):
        stream.next_episode()


@pytest.mark.compat
def test_flush_example_of_the_official_reader_test(flush_source):
    # 30-way 5 + 5, no shuffling: in the second episode class i < 10 flushes its i remaining
    # records then reads 0-4 / 5-9; classes >= 10 flush nothing and read 10-14 / 15-19.
    episode_config = config(num_ways=30, num_support=5, num_query=5)
    episodes, chunk_sizes = raw_episodes(flush_source, Split.TRAIN, episode_config, 2)
    assert chunk_sizes == (300, 150, 150) and len(episodes[1][0]) == 600
    _, class_ids, indices = episodes[1]
    flush_ids, support_ids, query_ids = split_chunks(class_ids, chunk_sizes)
    flush_idx, support_idx, query_idx = split_chunks(indices, chunk_sizes)
    real = flush_ids >= 0
    flushed = {c: sorted(flush_idx[real][flush_ids[real] == c].tolist()) for c in range(30)}
    for c in range(30):
        if c < 10:
            assert flushed[c] == list(range(10, 10 + c)), c
        else:
            assert flushed[c] == [], c
    assert flush_ids[-1] == reader_lib.PLACEHOLDER_CLASS_ID
    for ids, idx, start in ((support_ids, support_idx, 0), (query_ids, query_idx, 5)):
        real = ids >= 0
        assert real.sum() == 150
        for c in range(30):
            got = idx[real][ids[real] == c].tolist()
            expected = list(range(start, start + 5)) if c < 10 else list(
                range(10 + start, 15 + start))
            assert got == expected, (c, got)


def _check_episode_layout(records, class_ids, indices, chunk_sizes, description, offset):
    assert len(class_ids) == sum(chunk_sizes)
    flush, support, query = zip(*(split_chunks(a, chunk_sizes)
                                  for a in (records, class_ids, indices)))
    # Placeholders only as a suffix of each chunk, and the flush chunk always ends with one.
    for ids in (flush[1], support[1], query[1]):
        n = int((ids >= 0).sum())
        assert (ids[:n] >= 0).all() and (ids[n:] == -1).all()
    assert flush[1][-1] == -1
    for chunk in (flush, support, query):
        pad = chunk[1] == -1
        assert all(r == b"" for r in chunk[0][pad]) and (chunk[2][pad] == -1).all()
    # Targets equal the description: s_c support ids then q query ids per class, in order.
    expected_support = np.concatenate([[rel + offset] * s for rel, s, _ in description])
    expected_query = np.concatenate([[rel + offset] * q for rel, _, q in description])
    n_s, n_q = len(expected_support), len(expected_query)
    assert support[1][:n_s].tolist() == expected_support.tolist()
    assert query[1][:n_q].tolist() == expected_query.tolist()
    # Each record's label is the class it was read for; no record twice in the episode.
    used = list(zip(support[1][:n_s], support[2][:n_s])) + list(
        zip(query[1][:n_q], query[2][:n_q]))
    assert len(set(used)) == len(used)
    for record, class_id in zip(support[0][:n_s], support[1][:n_s]):
        parsed = tf.train.Example.FromString(record)
        assert parsed.features.feature["label"].int64_list.value[0] == class_id


@pytest.mark.parametrize("split,kwargs", [
    (Split.TRAIN, {}),  # variable ways and shots (official defaults)
    (Split.VALID, {"num_ways": 5, "num_support": 2, "num_query": 3}),
    (Split.TEST, {"num_support": (1, 4)}),
    (Split.TEST, {"num_query": 4}),
])
def test_episodes_follow_descriptions_without_duplicates(toy_source, split, kwargs):
    episode_config = config(**kwargs)
    offset = toy_source.get_classes(split)[0]
    # Re-create the same sampler draws to know each episode's description.
    expected_sampler = sampling.EpisodeDescriptionSampler(toy_source, split, episode_config,
                                                          rng=7)
    episodes, chunk_sizes = raw_episodes(toy_source, split, episode_config, 6,
                                         shuffle_buffer_size=30, seed=7)
    for records, class_ids, indices in episodes:
        description = expected_sampler.sample_episode_description()
        _check_episode_layout(records, class_ids, indices, chunk_sizes, description, offset)


def test_shuffle_before_repeat_gives_clean_epochs(tmp_path):
    spec = write_tiny_source(tmp_path, "one", [7, 7, 7, 7, 7], (5, 0, 0), images="bands")
    stream = class_stream(spec.record_path(2), 2, 7, shuffle_buffer_size=1000,
                                     shuffle_seed=3)
    indices = [int(i) for (i, _), _ in stream.take(7 * 4)]
    epochs = [indices[7 * e: 7 * e + 7] for e in range(4)]
    assert all(sorted(e) == list(range(7)) for e in epochs)
    assert len({tuple(e) for e in epochs}) > 1  # reshuffled every epoch


def test_switch_frequency_and_unique_descriptions(toy_source):
    episode_config = config(episode_description_switch_frequency=3)
    episodes, chunk_sizes = raw_episodes(toy_source, Split.TRAIN, episode_config, 9,
                                         shuffle_buffer_size=30)

    def targets(episode):
        ids = split_chunks(episode[1], chunk_sizes)[1]
        return tuple(ids[ids >= 0])

    groups = [[targets(e) for e in episodes[3 * g: 3 * g + 3]] for g in range(3)]
    assert all(len(set(g)) == 1 for g in groups)
    assert groups[0][0] != groups[1][0] and groups[1][0] != groups[2][0]
    for records, class_ids, indices in episodes:  # no duplicates despite repeats
        support = split_chunks(np.stack([class_ids, indices], 1), chunk_sizes)[1]
        real = [tuple(x) for x in support if x[0] >= 0]
        assert len(set(real)) == len(real)

    episode_config = config(num_unique_descriptions=3)
    episodes, _ = raw_episodes(toy_source, Split.TRAIN, episode_config, 12,
                               shuffle_buffer_size=30)
    distinct = {targets(e) for e in episodes}
    assert len(distinct) == 3


def test_shuffle_seeds_make_records_repeat_and_unseeded_differ(toy_source):
    episode_config = config()
    seeds = list(range(100, 115))
    a, _ = raw_episodes(toy_source, Split.TRAIN, episode_config, 3, 30, seed=1,
                        class_seeds=seeds)
    b, _ = raw_episodes(toy_source, Split.TRAIN, episode_config, 3, 30, seed=1,
                        class_seeds=seeds)
    c, _ = raw_episodes(toy_source, Split.TRAIN, episode_config, 3, 30, seed=1)
    d, _ = raw_episodes(toy_source, Split.TRAIN, episode_config, 3, 30, seed=1)
    for x, y in zip(a, b):
        assert (x[2] == y[2]).all() and (x[1] == y[1]).all()
    # Same descriptions (same sampler seed), but unseeded shuffles pick other records.
    assert all((x[1] == y[1]).all() for x, y in zip(c, d))
    assert any((x[2] != y[2]).any() for x, y in zip(c, d))


def test_short_class_file_fails_with_both_counts(tmp_path):
    spec = write_tiny_source(tmp_path, "short", [6, 6, 6, 6, 6], (5, 0, 0), images="bands")
    with tf.io.TFRecordWriter(spec.record_path(3)) as w:  # 4 records instead of 6
        for i in range(4):
            w.write(example(encode(band_image(3, i), "PNG"), 3))
    records = class_files.ClassRecords(spec, 3, -1, None)
    with pytest.raises(class_files.RecordsError,
                       match=r"3\.tfrecords \(class id 3 of source 'short'\): holds 4 records "
                             r"but dataset_spec.json says 6"):
        records.take(1)
    # Taking only the first records of a longer file is fine; more than the spec is not.
    assert len(class_files.ClassRecords(spec, 3, 3, None).take(5)) == 5
    with tf.io.TFRecordWriter(spec.record_path(3)) as w:
        for i in range(7):
            w.write(example(encode(band_image(3, i), "PNG"), 3))
    with pytest.raises(class_files.RecordsError, match="holds more than the 6 records"):
        class_files.ClassRecords(spec, 3, -1, None).take(1)


@pytest.mark.parametrize("count, buffer_size, num_to_take, seed", [
    (7, 1000, -1, 3),  # whole class in the buffer
    (30, 8, -1, 4),  # streaming shuffle: buffer smaller than the class
    (30, 1000, 12, 5),  # first records only
    (10, 0, -1, None),  # no shuffling
])
def test_class_records_follow_the_class_stream(tmp_path, count, buffer_size, num_to_take,
                                               seed):
    # The episode reader's Python streams must give exactly the tf.data stream's records.
    spec = write_tiny_source(tmp_path, "one", [count] * 2, (2, 0, 0), images="bands", fmt="PNG")
    n = count if num_to_take < 0 else num_to_take
    stream = class_stream(spec.record_path(1), 1, count, buffer_size,
                          num_to_take=num_to_take, shuffle_seed=seed)
    expected = [(int(i), r.numpy()) for (i, r), _ in stream.take(4 * n)]
    records = class_files.ClassRecords(
        spec, 1, num_to_take, class_files.index_epochs(n, buffer_size, seed,
                                                       class_files.current_global_seed()))
    got = records.take(n - 1) + records.take(3 * n + 1)
    assert [i for i, _ in got] == [i for i, _ in expected]
    assert got == expected
    if buffer_size > 1:
        assert [i for i, _ in got[:n]] != list(range(n))


def test_batch_epochs_interleave_in_proportion_and_repeat_with_their_seed(tmp_path, rng_seed):
    from ctx_tf.data.reading.batch_reader import BatchReader

    spec = write_tiny_source(tmp_path, "sizes", [40, 10, 10, 20], (4, 0, 0), images="bands",
                             fmt="PNG")
    reader = BatchReader(spec, Split.TRAIN, shuffle_buffer_size=0)
    rng = np.random.RandomState(rng_seed)
    first_halves = np.zeros(4)
    for _ in range(200):
        order = list(reader.epoch_order(rng))
        assert sorted(order) == sorted((c, i) for c, n in enumerate([40, 10, 10, 20])
                                       for i in range(n))
        for c in range(4):  # file order within a class
            assert [i for k, i in order if k == c] == list(range([40, 10, 10, 20][c]))
        first_halves += np.bincount([c for c, _ in order[:40]], minlength=4)
    # Classes are drawn in proportion to their sizes while they have records left.
    np.testing.assert_allclose(first_halves / first_halves.sum(), [0.5, 0.125, 0.125, 0.25],
                               atol=0.03)
    shuffled = BatchReader(spec, Split.TRAIN, shuffle_buffer_size=25)

    def batches(seed, n):
        generator = shuffled.batches(32, np.random.RandomState(seed))
        return [next(generator) for _ in range(n)]

    a, b, c = batches(rng_seed, 6), batches(rng_seed, 6), batches(rng_seed + 1, 6)
    assert [len(x[0]) for x in a] == [32, 32, 16, 32, 32, 16]  # an epoch of 80 records
    assert all((x[2] == y[2]).all() and (x[0] == y[0]).all() for x, y in zip(a, b))
    assert any((x[2] != y[2]).any() for x, y in zip(a, c))
    epoch = np.concatenate([np.stack([x[1], x[2]], 1) for x in a[:3]])
    assert len({tuple(p) for p in epoch.tolist()}) == 80
