"""Episode and batch pipelines on official-format records."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from ctx_tf.data import dataset_spec as dataset_spec_lib
from ctx_tf.data import pipeline
from ctx_tf.data import sampling
from ctx_tf.data.dataset_spec import Split, use_ontologies
from ctx_tf.data.episode import Episode
from ctx_tf.data.reading.errors import ReaderError, RecordsError
from ctx_tf.data.sources import omniglot
from ctx_tf.data.writing.arrays import write_source_from_arrays
from ctx_tf.errors import UserError
from tests.conftest import shared_path
from tests.data.helpers import (IMAGE_SIDE, band_image, encode, example, read_bands,
                                write_tiny_source)

SMALL = dict(num_ways=5, num_support=2, num_query=2)  # chunks 10 / 10 / 20: fast episodes


def config(**kwargs):
    return sampling.EpisodeDescriptionConfig(**kwargs)


def episodes_of(dataset, n):
    # Through `iterate`, as every consumer: the episode generators stop before the iterator
    # is deleted.
    return [(tf.nest.map_structure(lambda t: t.numpy(), e), int(s))
            for e, s in pipeline.iterate(dataset.take(n), [])]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("records")
    return write_tiny_source(root, "toy", [10, 20, 30] * 5, (5, 5, 5), images="bands")


def one_source(spec, split=Split.TRAIN, episode_config=None, **kwargs):
    kwargs.setdefault("image_size", IMAGE_SIDE)
    kwargs.setdefault("shuffle_buffer_size", 1000)
    return pipeline.make_one_source_episode_pipeline(
        spec, False, False, split, episode_config or config(), **kwargs)


def check_episode(episode, split_classes):
    """Images show the class their id says; labels follow description order; no repeats."""
    assert isinstance(episode, Episode)
    for images, labels, ids in ((episode.support_images, episode.support_labels,
                                 episode.support_class_ids),
                                (episode.query_images, episode.query_labels,
                                 episode.query_class_ids)):
        assert images.dtype == np.float32 and labels.dtype == np.int32 and ids.dtype == np.int64
        assert images.shape == (len(ids), IMAGE_SIDE, IMAGE_SIDE, 3)
        assert images.min() >= -1.0 and images.max() <= 1.0
        shown_class, shown_index = read_bands(images)
        np.testing.assert_array_equal(shown_class, ids)
        pairs = list(zip(shown_class.tolist(), shown_index.tolist()))
        assert len(set(pairs)) == len(pairs)
        assert set(ids.tolist()) <= set(split_classes)
        # Grouped by class; label k = k-th class in order of appearance.
        order = list(dict.fromkeys(ids.tolist()))
        np.testing.assert_array_equal(labels, [order.index(c) for c in ids.tolist()])
        assert (np.diff(labels) >= 0).all()
    # Support and query list the same classes in the same order.
    assert list(dict.fromkeys(episode.support_class_ids.tolist())) == list(
        dict.fromkeys(episode.query_class_ids.tolist()))
    support_pairs = set(zip(*read_bands(episode.support_images)))
    query_pairs = set(zip(*read_bands(episode.query_images)))
    assert not support_pairs & query_pairs


@pytest.mark.compat
def test_one_source_episodes_show_their_classes(toy):
    for split in (Split.TRAIN, Split.TEST):
        dataset = one_source(toy, split, seed=5)
        for episode, source_id in episodes_of(dataset, 3):
            assert source_id == 0
            check_episode(episode, list(toy.get_classes(split)))


def test_seeded_pipelines_repeat_and_unseeded_differ(toy):
    def run(seed):
        return episodes_of(one_source(toy, seed=seed), 3)

    a, b, c = run(11), run(11), run(12)
    for (x, _), (y, _) in zip(a, b):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)
    assert any(len(x.support_class_ids) != len(y.support_class_ids)
               or (x.support_class_ids != y.support_class_ids).any()
               for (x, _), (y, _) in zip(a, c))
    # Unseeded, even with the same descriptions (fixed all-class episodes) images differ.
    fixed = config(num_ways=5, num_support=2, num_query=3)
    u, v = (episodes_of(one_source(toy, episode_config=fixed), 2) for _ in range(2))
    assert any((read_bands(x.support_images)[1] != read_bands(y.support_images)[1]).any()
               or (x.support_class_ids != y.support_class_ids).any()
               for (x, _), (y, _) in zip(u, v))


def test_sampler_seed_gives_the_descriptions_of_a_seeded_pipeline(toy, rng_seed):
    """A sampler on a RandomState of `sampler_seed(seed, 0)` (what benchmarks/train_run.py
    hands the official trainer's sampler) describes the seeded pipeline's episodes in order."""
    variable = config()  # variable ways, shots and queries: the sizes tell episodes apart
    sampler = sampling.EpisodeDescriptionSampler(
        toy, Split.TRAIN, variable, rng=np.random.RandomState(pipeline.sampler_seed(rng_seed, 0)))
    expected = [sampler.sample_episode_description() for _ in range(4)]
    classes = toy.get_classes(Split.TRAIN)
    for (episode, _), description in zip(
            episodes_of(one_source(toy, episode_config=variable, seed=rng_seed), 4), expected):
        ids = [classes[c] for c, _, _ in description]
        for got, column in ((episode.support_class_ids, 1), (episode.query_class_ids, 2)):
            np.testing.assert_array_equal(
                got, np.repeat(ids, [d[column] for d in description]))
    other = sampling.EpisodeDescriptionSampler(
        toy, Split.TRAIN, variable,
        rng=np.random.RandomState(pipeline.sampler_seed(rng_seed + 1, 0)))
    assert [other.sample_episode_description() for _ in range(4)] != expected


def _coded_source(root, name, code, counts, classes_per_split):
    """Class c of this source shows class band c + code (so sources are told apart)."""
    def record(class_id, index):
        return example(encode(band_image(class_id + code, index), "JPEG"), class_id)
    return write_tiny_source(root, name, counts, classes_per_split, images="bands",
                             record_fn=record)


def test_multisource_episodes_never_mix_and_sources_are_uniform(tmp_path, rng_seed):
    specs = [_coded_source(tmp_path, "a", 0, [8] * 6, (6, 0, 0)),
             _coded_source(tmp_path, "b", 10, [8] * 6, (6, 0, 0))]
    dataset = pipeline.make_multisource_episode_pipeline(
        specs, [False, False], [False, False], Split.TRAIN, config(**SMALL),
        image_size=IMAGE_SIDE, shuffle_buffer_size=1000, seed=rng_seed % 2**31)
    counts = [0, 0]
    n = 160
    for episode, source_id in episodes_of(dataset, n):
        counts[source_id] += 1
        for images, ids in ((episode.support_images, episode.support_class_ids),
                            (episode.query_images, episode.query_class_ids)):
            shown, _ = read_bands(images)
            np.testing.assert_array_equal(shown, ids + 10 * source_id)
    # Binomial(160, 1/2): mean 80, sd 6.3; 4.5 sd bound.
    assert abs(counts[0] - n / 2) <= 4.5 * np.sqrt(n / 4), counts


def test_multisource_checks_argument_lengths(toy):
    with pytest.raises(ValueError, match="2 sources but 1 use_dag_ontology"):
        pipeline.make_multisource_episode_pipeline(
            [toy, toy], [False], [False, False], Split.TRAIN, config(), image_size=8)


def test_num_to_take_limits_records_and_sampler(toy):
    dataset = one_source(toy, num_to_take=6, seed=1,
                         episode_config=config(num_ways=5, num_support=3, num_query=3))
    for episode, _ in episodes_of(dataset, 4):
        check_episode(episode, list(toy.get_classes(Split.TRAIN)))
        for images in (episode.support_images, episode.query_images):
            assert read_bands(images)[1].max() < 6


def _bilevel_source(root):
    """3 superclasses x 5 classes x 6 images, all TEST."""
    spec = write_tiny_source(root, "bilevel", [6] * 15, (0, 0, 15), images="bands")
    path = os.path.join(str(root), "bilevel", "dataset_spec.json")
    with open(path) as f:
        data = json.load(f)
    data.pop("classes_per_split")
    data.update({"__class__": "BiLevelDatasetSpecification",
                 "superclasses_per_split": {"TRAIN": 0, "VALID": 0, "TEST": 3},
                 "classes_per_superclass": {"0": 5, "1": 5, "2": 5},
                 "superclass_names": {"0": "s0", "1": "s1", "2": "s2"}})
    with open(path, "w") as f:
        json.dump(data, f)
    del spec
    return dataset_spec_lib.load_dataset_spec(os.path.join(str(root), "bilevel"))


def test_bilevel_and_ignore_hierarchy_probability(tmp_path):
    spec = _bilevel_source(tmp_path)
    episode_config = config(min_ways=2, max_ways_upper_bound=5, max_num_query=1,
                            max_support_set_size=10)

    def superclass_sets(probability):
        dataset = pipeline.make_one_source_episode_pipeline(
            spec, False, True, Split.TEST, episode_config, image_size=IMAGE_SIDE,
            shuffle_buffer_size=1000, ignore_hierarchy_probability=probability, seed=4)
        return [set((e.support_class_ids // 5).tolist()) for e, _ in episodes_of(dataset, 12)]

    assert all(len(s) == 1 for s in superclass_sets(0.0))
    assert any(len(s) > 1 for s in superclass_sets(1.0))


def test_batch_pipelines_read_each_record_once_per_epoch(toy):
    batch_size = 16
    dataset = pipeline.make_one_source_batch_pipeline(
        toy, Split.VALID, batch_size, image_size=IMAGE_SIDE, shuffle_buffer_size=100, seed=2)
    offset = toy.get_classes(Split.VALID)[0]
    total = sum(toy.num_images(c) for c in toy.get_classes(Split.VALID))
    seen = []
    for (images, labels), source_id in dataset.take(-(-total // batch_size)):
        shown_class, shown_index = read_bands(images.numpy())
        assert labels.dtype == tf.int64 and int(source_id) == 0
        np.testing.assert_array_equal(labels.numpy(), shown_class - offset)
        seen += list(zip(shown_class.tolist(), shown_index.tolist()))
    assert len(seen) == total and len(set(seen)) == total

    multi = pipeline.make_multisource_batch_pipeline(
        [toy, toy], Split.VALID, batch_size, add_dataset_offset=True, image_size=IMAGE_SIDE,
        shuffle_buffer_size=100, seed=2)
    for (images, labels), source_id in multi.take(6):
        shown_class, _ = read_bands(images.numpy())
        np.testing.assert_array_equal(labels.numpy(), shown_class - offset + 5 * int(source_id))


# ----------------------------------------------------------------------------- errors


def test_errors_before_building(tmp_path, toy):
    spec = write_tiny_source(tmp_path, "gone", [6] * 6, (6, 0, 0), images="bands")
    os.remove(spec.record_path(4))
    with pytest.raises(ReaderError, match=r"1 class file\(s\) missing: .*4\.tfrecords "
                                          r"\(class id 4\)"):
        one_source(spec)
    with pytest.raises(ReaderError, match="split VALID: the split has no classes"):
        one_source(spec, Split.VALID)
    moved = dataset_spec_lib.load_dataset_spec(os.path.dirname(spec.record_path(0)))
    moved.path = str(tmp_path / "nowhere" / "gone")
    with pytest.raises(ReaderError, match="records directory .*nowhere/gone does not exist "
                                          r"\(the records root .*nowhere does not exist"):
        one_source(moved)
    with pytest.raises(ReaderError, match="cannot sample episodes.*num_ways is 9"):
        one_source(toy, episode_config=config(num_ways=9, num_support=1, num_query=1))
    with pytest.raises(NotImplementedError, match="pool"):
        one_source(toy, pool="test")
    # A description the sampler cannot fill (a class of 1 image) fails at build time too.
    tiny = write_tiny_source(tmp_path, "tiny", [6, 6, 6, 6, 1], (5, 0, 0), images="bands")
    with pytest.raises(ReaderError, match="cannot sample episodes.*at least 2 images"):
        one_source(tiny, episode_config=config(num_ways=5))


def test_validate_records_names_file_and_counts(tmp_path):
    spec = write_tiny_source(tmp_path, "short", [6] * 6, (6, 0, 0), images="bands")
    with tf.io.TFRecordWriter(spec.record_path(2)) as w:
        for i in range(5):
            w.write(example(encode(band_image(2, i), "PNG"), 2))
    with pytest.raises(ReaderError, match=r"2\.tfrecords \(class id 2\) holds 5 records but "
                                          r"dataset_spec.json says 6"):
        one_source(spec, validate_records=True)
    # Without validation the same problem surfaces lazily, when the file end is read.
    dataset = one_source(spec, episode_config=config(num_ways=6, num_support=2, num_query=1))
    with pytest.raises(RecordsError, match=r"2\.tfrecords \(class id 2 of source 'short'\): "
                                           r"holds 5 records but dataset_spec.json says 6; "
                                           r"run `python -m ctx_tf.data.writer --check=.*short`"):
        for _ in zip(range(4), pipeline.iterate(dataset, [spec], Split.TRAIN)):
            pass


def _damage(path, how):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    if how == "empty":
        data = b""
    elif how == "truncated":
        data = data[:len(data) - 40]
    else:  # one flipped bit inside the third record's payload (caught by its CRC)
        offset = 0
        for _ in range(2):  # framing: length (8 bytes), its CRC (4), payload, payload CRC (4)
            offset += int.from_bytes(data[offset:offset + 8], "little") + 16
        length = int.from_bytes(data[offset:offset + 8], "little")
        data[offset + 12 + length // 2] ^= 0x10
    with open(path, "wb") as f:
        f.write(bytes(data))


@pytest.mark.parametrize("how", ["truncated", "bitflip"])
def test_damaged_class_file_is_named_while_reading(tmp_path, how):
    spec = write_tiny_source(tmp_path, "hurt", [6] * 5, (5, 0, 0), images="bands", fmt="PNG")
    _damage(spec.record_path(3), how)
    dataset = one_source(spec, episode_config=config(num_ways=5, num_support=3, num_query=3),
                         seed=1)
    damage = {"truncated": r"damaged after \d readable records \(truncated record",
              "bitflip": r"record 2 is damaged \(corrupt data checksum"}[how]
    with pytest.raises(RecordsError, match=r"3\.tfrecords \(class id 3 of source 'hurt'\): "
                                           + damage + r".*--check="):
        list(pipeline.iterate(dataset.take(2), [spec], Split.TRAIN))
    batches = pipeline.make_one_source_batch_pipeline(spec, Split.TRAIN, 4, image_size=IMAGE_SIDE)
    with pytest.raises(RecordsError, match=r"3\.tfrecords \(class id 3 of source 'hurt'\)"):
        list(pipeline.iterate(batches.take(20), [spec], Split.TRAIN))


def test_empty_class_file_fails_when_the_pipeline_is_built(tmp_path):
    spec = write_tiny_source(tmp_path, "hollow", [6] * 5, (5, 0, 0), images="bands", fmt="PNG")
    _damage(spec.record_path(1), "empty")
    for build in (lambda: one_source(spec),
                  lambda: pipeline.make_one_source_batch_pipeline(spec, Split.TRAIN, 4)):
        with pytest.raises(RecordsError, match=r"1\.tfrecords \(class id 1 of source "
                                               r"'hollow'\): 0 bytes, too small for 6 "
                                               r"records; run .*--check=") as info:
            build()
        assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)


def test_undecodable_image_names_file_class_and_record(tmp_path):
    def record(class_id, index):
        if (class_id, index) == (3, 4):
            return example(b"not an image", class_id)
        return example(encode(band_image(class_id, index), "PNG"), class_id)

    spec = write_tiny_source(tmp_path, "broken", [5] * 5, (5, 0, 0), images="bands",
                             record_fn=record)
    dataset = one_source(spec, episode_config=config(num_ways=5, num_support=4, num_query=1),
                         shuffle_buffer_size=0)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"undecodable image(.|\n)*3\.tfrecords(.|\n)*class id(.|\n)*3"
                             r"(.|\n)*record index(.|\n)*4"):
        episodes_of(dataset, 1)
    with pytest.raises(RecordsError, match=r"source 'broken': .*undecodable image.*3\.tfrecords"
                                           r".*; run .*--check="):
        list(pipeline.iterate(dataset.take(1), [spec]))


def test_simclr_episodes_in_the_pipeline(toy):
    def run(fraction):
        return episodes_of(one_source(toy, episode_config=config(**SMALL), seed=8,
                                      simclr_episode_fraction=fraction), 2)

    converted, again = run(1.0), run(1.0)
    for (e, _), (f, _) in zip(converted, again):
        for u, v in zip(e, f):  # seeded: the augmentations repeat too
            np.testing.assert_array_equal(u, v)
        num_support = len(e.support_labels)
        np.testing.assert_array_equal(e.support_labels, np.arange(num_support))
        # Each query is a copy of a support image: same class id as its source image.
        np.testing.assert_array_equal(e.query_class_ids, e.support_class_ids[e.query_labels])
        assert e.query_images.shape[1:] == (IMAGE_SIDE, IMAGE_SIDE, 3)
    for e, _ in run(0.0):
        check_episode(e, list(toy.get_classes(Split.TRAIN)))
    with pytest.raises(ValueError, match="simclr_episode_fraction must be in"):
        run(1.5)


# ----------------------------------------------------------------------------- official records


@pytest.mark.slow
def test_official_omniglot_records_bilevel_test_episodes():
    directory = shared_path("data", "official_records", "omniglot")
    spec = dataset_spec_lib.load_dataset_spec(str(directory))
    use_dag, use_bilevel = use_ontologies(spec.name)
    dataset = pipeline.make_one_source_episode_pipeline(
        spec, use_dag, use_bilevel, Split.TEST, config(), image_size=28,
        shuffle_buffer_size=1000, read_buffer_size_bytes=1048576, num_prefetch=0, seed=1234)
    for episode, source_id in episodes_of(dataset, 4):
        ids = np.concatenate([episode.support_class_ids, episode.query_class_ids])
        assert ids.min() >= 964 and ids.max() <= 1622
        alphabets = {spec.superclass_names[s] for s in _superclasses_of(spec, ids)}
        assert len(alphabets) == 1, alphabets
        for images in (episode.support_images, episode.query_images):
            assert images.shape[1:] == (28, 28, 3)
            assert images.min() >= -1.0 and images.max() <= 1.0
            assert (images < 0).mean() > 0.8  # white strokes on a dark background
        assert (episode.query_labels.max() + 1) == len(set(ids.tolist()))


def _superclasses_of(spec, class_ids):
    firsts = np.cumsum([0] + [spec.classes_per_superclass[s]
                              for s in range(len(spec.classes_per_superclass))])
    return set((np.searchsorted(firsts, class_ids, side="right") - 1).tolist())


@pytest.mark.slow
def test_real_omniglot_slice_written_by_the_writer(tmp_path):
    omniglot_dir = shared_path("data", "omniglot")
    test_classes = [c for c in omniglot.list_classes(omniglot_dir) if c.split == "TEST"]
    alphabets = sorted({c.alphabet for c in test_classes})[:3]
    chosen = [c for c in test_classes if c.alphabet in alphabets]
    with np.load(os.path.join(str(omniglot_dir), chosen[0].npz_file)) as npz:
        drawings = npz["images"]
        arrays = [drawings[c.npz_row] for c in chosen]
    superclasses = [(a, [i for i, c in enumerate(chosen) if c.alphabet == a])
                    for a in alphabets]
    write_source_from_arrays(
        tmp_path, "omniglot", arrays, class_names=[c.name for c in chosen],
        splits={"TEST": alphabets}, superclasses=superclasses, invert=True)
    spec = dataset_spec_lib.load_dataset_spec(str(tmp_path / "omniglot"))
    # Same JPEG bytes as the official converter's records of that character (the labels
    # differ: the slice numbers its classes from 0).
    official = shared_path("data", "official_records", "omniglot",
                           f"{chosen[0].class_id}.tfrecords")

    def images_of(path):
        return [tf.train.Example.FromString(r.numpy()).features.feature["image"]
                .bytes_list.value[0] for r in tf.data.TFRecordDataset(str(path))]

    assert images_of(official) == images_of(spec.record_path(0))
    dataset = pipeline.make_one_source_episode_pipeline(
        spec, *use_ontologies(spec.name), Split.TEST, config(), image_size=28,
        shuffle_buffer_size=1000, seed=3)
    for episode, _ in episodes_of(dataset, 4):
        ids = np.concatenate([episode.support_class_ids, episode.query_class_ids])
        assert len(_superclasses_of(spec, ids)) == 1
        for images in (episode.support_images, episode.query_images):
            assert images.min() >= -1.0 and images.max() <= 1.0
            assert (images < 0).mean() > 0.8


def test_official_decoder_gin_bindings_apply(toy, clean_gin):
    import gin  # pylint: disable=import-outside-toplevel

    gin.parse_config("""
        process_episode.support_decoder = @support/ImageDecoder()
        process_episode.query_decoder = @StringDecoder()
        support/ImageDecoder.data_augmentation = @support/DataAugmentation()
        support/DataAugmentation.enable_jitter = True
        support/DataAugmentation.jitter_amount = 0
        support/DataAugmentation.enable_gaussian_noise = True
        support/DataAugmentation.gaussian_noise_std = 0.0
    """)
    episode, _ = episodes_of(one_source(toy, episode_config=config(**SMALL), seed=1), 1)[0]
    assert episode.support_images.shape[1:] == (IMAGE_SIDE, IMAGE_SIDE, 3)
    assert episode.query_images.dtype == object  # raw image bytes
    assert all(b[:8] == b"\x89PNG\r\n\x1a\n" or b[:3] == b"\xff\xd8\xff"
               for b in episode.query_images)
