"""Episodes stay identical, record for record: digests taken from the reader before its records
were read by offset (`reader_digests.json`), for one- and multi-source pipelines, the DAG and
bi-level sources, SimCLR episodes, small shuffle buffers and `num_to_take`.

Every record is a 4x4 PNG whose pixels spell its class id and its position in the class file,
so the decoded episode itself says which records it holds (PNG is lossless: the digests do not
depend on the image library's version). An episode's digest covers its source, and for the
support and the query, in order, the class ids, labels and (class, record) of every image;
SimCLR episodes' augmented images are left out (their class ids and labels stay in).
"""

import hashlib
import io
import json
import os
import pathlib

import numpy as np
import pytest
from PIL import Image

from ctx_tf.data import pipeline
from ctx_tf.data.dataset_spec import Split, load_dataset_spec, use_ontologies
from ctx_tf.data.reading.record_format import encode_example, write_tfrecord
from ctx_tf.data.sampling import EpisodeDescriptionConfig
from ctx_tf.data.writing import synthetic

DIGESTS = pathlib.Path(__file__).with_name("reader_digests.json")
SIDE = 4
CAPS = {"ilsvrc_2012": 12, "omniglot": 8, "aircraft": 15}


def identity_png(class_id, index):
    pixels = np.empty([SIDE, SIDE, 3], np.uint8)
    pixels[...] = (class_id % 256, class_id // 256, index)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, format="PNG")
    return out.getvalue()


def identities(images):
    """Decoded images in [-1, 1] -> [(class id, record index)]."""
    values = np.rint((np.asarray(images)[:, 0, 0, :] + 1.0) * 127.5).astype(int)
    return [(int(r) + 256 * int(g), int(b)) for r, g, b in values]


def write_identity_source(root, name, cap):
    directory = synthetic.write_benchmark_copy(root, name, max_images_per_class=cap,
                                               image_size=SIDE, pool_size=1)
    spec = load_dataset_spec(directory)
    for class_id in range(spec.num_classes):
        count = spec.get_total_images_per_class(class_id)
        write_tfrecord(spec.record_path(class_id),
                       (encode_example(identity_png(class_id, i), class_id)
                        for i in range(count)))
    return spec


def write_uneven_source(root):
    """A flat source whose classes hold 6 to 17 records (shuffle buffers below and above)."""
    directory = synthetic.write_flat_source(root, "uneven", (12, 6, 3), 6, image_size=SIDE,
                                            pool_size=1)
    counts = [6 + (i * 7) % 12 for i in range(21)]
    spec_file = os.path.join(directory, "dataset_spec.json")
    with open(spec_file) as f:
        spec = json.load(f)
    spec["images_per_class"] = {str(i): n for i, n in enumerate(counts)}
    for class_id, count in enumerate(counts):
        write_tfrecord(os.path.join(directory, f"{class_id}.tfrecords"),
                       (encode_example(identity_png(class_id, i), class_id)
                        for i in range(count)))
    with open(spec_file, "w") as f:
        json.dump(spec, f)
    return load_dataset_spec(directory)


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    root = tmp_path_factory.mktemp("identity_records")
    out = {name: write_identity_source(root, name, cap) for name, cap in CAPS.items()}
    out["uneven"] = write_uneven_source(root)
    return out


def one_source(spec, split, seed, config=None, **kwargs):
    dag, bilevel = use_ontologies(spec.name)
    kwargs.setdefault("shuffle_buffer_size", 1000)
    return pipeline.make_one_source_episode_pipeline(
        spec, dag, bilevel, split, config or EpisodeDescriptionConfig(), image_size=SIDE,
        seed=seed, **kwargs)


def multi_source(specs_list, split, seed, **kwargs):
    flags = [use_ontologies(s.name) for s in specs_list]
    return pipeline.make_multisource_episode_pipeline(
        specs_list, [f[0] for f in flags], [f[1] for f in flags], split,
        EpisodeDescriptionConfig(), shuffle_buffer_size=1000, image_size=SIDE, seed=seed,
        **kwargs)


SCENARIOS = {
    "ilsvrc_dag_seed0": lambda s: one_source(s["ilsvrc_2012"], Split.TRAIN, 0),
    "ilsvrc_dag_seed1": lambda s: one_source(s["ilsvrc_2012"], Split.TRAIN, 1),
    "ilsvrc_test_ignore_hierarchy": lambda s: one_source(
        s["ilsvrc_2012"], Split.TEST, 2, ignore_hierarchy_probability=0.5),
    "omniglot_bilevel_train": lambda s: one_source(s["omniglot"], Split.TRAIN, 3),
    "omniglot_bilevel_test": lambda s: one_source(s["omniglot"], Split.TEST, 4),
    "multisource_train": lambda s: multi_source(
        [s["ilsvrc_2012"], s["omniglot"], s["aircraft"]], Split.TRAIN, 5),
    "simclr_half": lambda s: one_source(s["aircraft"], Split.TRAIN, 6,
                                        simclr_episode_fraction=0.5),
    "multisource_simclr": lambda s: multi_source(
        [s["omniglot"], s["aircraft"]], Split.TRAIN, 7, simclr_episode_fraction=0.3),
    "small_buffer_take": lambda s: one_source(
        s["uneven"], Split.TRAIN, 8, EpisodeDescriptionConfig(
            num_ways=5, num_support=2, num_query=3), shuffle_buffer_size=4, num_to_take=9),
    "no_shuffle_valid": lambda s: one_source(s["uneven"], Split.VALID, 9,
                                             shuffle_buffer_size=0),
}
NUM_EPISODES = 24


def episode_digest(episode, source_id):
    parts = [int(source_id)]
    for images, labels, ids in ((episode.support_images, episode.support_labels,
                                 episode.support_class_ids),
                                (episode.query_images, episode.query_labels,
                                 episode.query_class_ids)):
        parts.append([ids.tolist(), labels.tolist()])
        shown = identities(images)
        if [c for c, _ in shown] == ids.tolist():  # not augmented
            parts.append(shown)
        else:
            parts.append("augmented")
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def scenario_digests(dataset):
    return [episode_digest(type(episode)(*[t.numpy() for t in episode]), source_id.numpy())
            for episode, source_id in dataset.take(NUM_EPISODES)]


def compute(specs, name):
    # One iteration: a second one continues the class epochs from wherever the first one's
    # prefetching stopped, which thread timing decides (see `shuffle_order`).
    return scenario_digests(SCENARIOS[name](specs))


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_episodes_match_the_recorded_digests(specs, name):
    expected = json.loads(DIGESTS.read_text())["scenarios"][name]
    got = compute(specs, name)
    first = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), None)
    assert first is None and len(got) == len(expected), (
        f"{name}: episode {first} differs from the recorded reader's")
