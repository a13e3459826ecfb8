"""Tests of ctx_tf.data.writing.arrays: arrays -> sources, splits, overwriting."""

import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from ctx_tf.data.checking.consistency import check_source
from ctx_tf.data.dataset_spec import load_dataset_spec
from ctx_tf.data.writing.arrays import write_source_from_arrays

FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
}


def read_source_file(path):
    """(labels, decoded uint8 images) of one TFRecord file, via tf.data + parse_single_example."""
    labels, images = [], []
    for raw in tf.data.TFRecordDataset(str(path)):
        ex = tf.io.parse_single_example(raw, FEATURES)
        labels.append(int(ex["label"]))
        images.append(tf.io.decode_jpeg(ex["image"], channels=3).numpy())
    return labels, images


def make_arrays(num_classes, counts=None, size=(48, 48), rgb=False, seed=0):
    rng = np.random.RandomState(seed)
    counts = counts or [3 + (i % 3) for i in range(num_classes)]
    shape = size + ((3,) if rgb else ())
    # Smooth blocks so that JPEG is close to the input.
    out = []
    for c, n in enumerate(counts):
        base = rng.randint(0, 256, size=(n, 3, 2) + ((3,) if rgb else ()), dtype=np.uint8)
        big = np.repeat(np.repeat(base, size[0] // 3, axis=1), size[1] // 2, axis=2)
        assert big.shape[1:] == shape
        out.append(big)
    return out


def pil_reencode(array, invert=False):
    img = Image.fromarray(array).convert("RGB")
    if invert:
        from PIL import ImageOps
        img = ImageOps.invert(img)
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    return tf.io.decode_jpeg(buf.getvalue(), channels=3).numpy()


@pytest.mark.compat
def test_arrays_roundtrip_plain(tmp_path):
    arrays = make_arrays(5)
    names = [f"c{i}" for i in range(5)]
    report = write_source_from_arrays(tmp_path, "toy", arrays, names, splits=(2, 2, 1))
    out = tmp_path / "toy"
    assert sorted(os.listdir(out)) == sorted(
        [f"{i}.tfrecords" for i in range(5)] + ["dataset_spec.json"])
    assert report.classes_per_split == {"TRAIN": 2, "VALID": 2, "TEST": 1}
    assert report.num_images == sum(len(a) for a in arrays)
    for cid in range(5):
        labels, images = read_source_file(out / f"{cid}.tfrecords")
        assert labels == [cid] * len(arrays[cid])
        for img, src in zip(images, arrays[cid]):
            assert img.shape == src.shape + (3,)
            np.testing.assert_array_equal(img, pil_reencode(src))
            assert np.abs(img.astype(int) - src[..., None].astype(int)).mean() < 4
    spec = json.loads((out / "dataset_spec.json").read_text())
    assert list(spec) == ["name", "classes_per_split", "images_per_class", "class_names",
                          "path", "file_pattern", "__class__"]
    assert spec["__class__"] == "DatasetSpecification"
    assert spec["classes_per_split"] == {"TRAIN": 2, "VALID": 2, "TEST": 1}
    assert spec["images_per_class"] == {str(i): len(a) for i, a in enumerate(arrays)}
    assert spec["class_names"] == {str(i): n for i, n in enumerate(names)}
    assert spec["file_pattern"] == "{}.tfrecords"
    assert spec["path"] == os.path.join(str(tmp_path), "toy")
    loaded = load_dataset_spec(out)
    assert loaded.num_classes == 5 and list(loaded.get_classes("VALID")) == [2, 3]
    assert check_source(out).ok


def test_arrays_rgb_lists_and_invert(tmp_path):
    arrays = make_arrays(3, rgb=True)
    per_image_lists = [list(a) for a in arrays]
    write_source_from_arrays(tmp_path, "rgb", per_image_lists, splits=(1, 1, 1),
                             invert=True)
    labels, images = read_source_file(tmp_path / "rgb" / "1.tfrecords")
    assert labels == [1] * len(arrays[1])
    for img, src in zip(images, arrays[1]):
        np.testing.assert_array_equal(img, pil_reencode(src, invert=True))
        assert np.abs(img.astype(int) - (255 - src.astype(int))).mean() < 6


def test_bilevel_arrays(tmp_path):
    arrays = make_arrays(7)
    names = [f"k{i}" for i in range(7)]
    supers = [("A", [0, 1]), ("B", [2]), ("C", [3, 4, 5]), ("D", [6])]
    report = write_source_from_arrays(
        tmp_path, "bi", arrays, names, superclasses=supers,
        splits={"TRAIN": ["C", "A"], "VALID": ["D"], "TEST": ["B"]})
    spec = json.loads((tmp_path / "bi" / "dataset_spec.json").read_text())
    assert list(spec) == ["name", "superclasses_per_split", "classes_per_superclass",
                          "images_per_class", "superclass_names", "class_names", "path",
                          "file_pattern", "__class__"]
    assert spec["__class__"] == "BiLevelDatasetSpecification"
    assert spec["superclasses_per_split"] == {"TRAIN": 2, "VALID": 1, "TEST": 1}
    assert spec["superclass_names"] == {"0": "C", "1": "A", "2": "D", "3": "B"}
    assert spec["classes_per_superclass"] == {"0": 3, "1": 2, "2": 1, "3": 1}
    order = [3, 4, 5, 0, 1, 6, 2]
    assert spec["class_names"] == {str(i): names[k] for i, k in enumerate(order)}
    assert report.classes_per_split == {"TRAIN": 5, "VALID": 1, "TEST": 1}
    assert report.superclasses_per_split == {"TRAIN": 2, "VALID": 1, "TEST": 1}
    for cid, k in enumerate(order):
        labels, images = read_source_file(tmp_path / "bi" / f"{cid}.tfrecords")
        assert labels == [cid] * len(arrays[k])
        np.testing.assert_array_equal(images[0], pil_reencode(arrays[k][0]))
    loaded = load_dataset_spec(tmp_path / "bi")
    assert list(loaded.get_classes("TRAIN")) == [0, 1, 2, 3, 4]
    assert check_source(tmp_path / "bi").ok


def test_seeded_split_written_twice_gives_identical_files(tmp_path):
    arrays = make_arrays(6)
    write_source_from_arrays(tmp_path / "r1", "s", arrays, seed=11)
    write_source_from_arrays(tmp_path / "r2", "s", arrays, seed=11)
    for f in sorted(os.listdir(tmp_path / "r1" / "s")):
        if f.endswith(".tfrecords"):
            assert (tmp_path / "r1" / "s" / f).read_bytes() == (
                tmp_path / "r2" / "s" / f).read_bytes()


def test_no_overwrite_and_overwrite(tmp_path):
    arrays = make_arrays(4)
    write_source_from_arrays(tmp_path, "src", arrays, splits=(2, 1, 1))
    before = {f: (tmp_path / "src" / f).read_bytes() for f in os.listdir(tmp_path / "src")}
    with pytest.raises(FileExistsError, match="overwrite"):
        write_source_from_arrays(tmp_path, "src", arrays[:2], splits=(1, 1, 0))
    after = {f: (tmp_path / "src" / f).read_bytes() for f in os.listdir(tmp_path / "src")}
    assert before == after
    write_source_from_arrays(tmp_path, "src", arrays[:2], splits=(1, 1, 0),
                             overwrite=True)
    assert sorted(os.listdir(tmp_path / "src")) == ["0.tfrecords", "1.tfrecords",
                                                    "dataset_spec.json"]
    assert check_source(tmp_path / "src").ok
    # An empty existing directory is fine.
    (tmp_path / "empty").mkdir()
    write_source_from_arrays(tmp_path, "empty", arrays[:1], splits=(1, 0, 0))
