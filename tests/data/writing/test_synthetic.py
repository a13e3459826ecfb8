"""`ctx_tf.data.writing.synthetic`: official class layouts with generated records."""

import json

import numpy as np
import pytest
import tensorflow as tf

from ctx_tf.data import facts
from ctx_tf.data.dataset_spec import Split, load_dataset_spec
from ctx_tf.data.reading.record_format import count_records
from ctx_tf.data.writing import synthetic


@pytest.mark.parametrize("name", ["ilsvrc_2012", "omniglot", "traffic_sign"])
def test_benchmark_copy_keeps_the_official_layout_with_capped_classes(tmp_path, name):
    directory = synthetic.write_benchmark_copy(tmp_path, name, max_images_per_class=7,
                                               image_size=8)
    spec = load_dataset_spec(directory)
    official = facts.dataset_spec(name)
    assert type(spec).__name__ == official["__class__"]
    assert spec.class_names == {int(k): v for k, v in official["class_names"].items()}
    for split in Split:
        classes = list(spec.get_classes(split))
        for class_id in classes[:50]:
            count = spec.get_total_images_per_class(class_id)
            assert 1 <= count <= 7
            assert count_records(spec.record_path(class_id)) == count
    if name == "ilsvrc_2012":
        # Internal nodes count the (cut) images of the leaves they span.
        written = json.loads((tmp_path / name / "dataset_spec.json").read_text())
        root = next(n for n in official["split_subgraphs"]["TRAIN"] if not n["parents_ids"])
        leaves = spec.get_classes(Split.TRAIN)
        total = sum(spec.get_total_images_per_class(c) for c in leaves)
        assert written["images_per_class"]["TRAIN"][root["wn_id"]] == total
    assert sum(len(list(spec.get_classes(s))) for s in Split) == len(official["class_names"])


def test_padding_reaches_the_record_size_and_keeps_the_pixels():
    plain = synthetic.jpeg_pool(2, image_size=12, seed=3)
    padded = synthetic.jpeg_pool(2, image_size=12, record_bytes=150_000, seed=3)
    for a, b in zip(plain, padded):
        assert len(b) == 150_000
        np.testing.assert_array_equal(tf.io.decode_jpeg(a).numpy(), tf.io.decode_jpeg(b).numpy())


def test_flat_source_has_the_asked_shape(tmp_path):
    spec = load_dataset_spec(synthetic.write_flat_source(tmp_path, "flat", (5, 2, 3), 4))
    assert [len(list(spec.get_classes(s))) for s in Split] == [5, 2, 3]
    assert all(count_records(spec.record_path(c)) == 4 for c in range(10))
