"""Tests of ctx_tf.data.writing.folder: folder trees -> sources, with the engine's bad-image
policy."""

import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from ctx_tf.data.checking.consistency import check_source
from ctx_tf.data.dataset_spec import load_dataset_spec
from ctx_tf.data.writing import engine
from ctx_tf.data.writing.errors import SourceConversionError, SourceWriteError
from ctx_tf.data.writing.folder import write_source_from_folder


def _make_tree(root, bilevel):
    rng = np.random.RandomState(1)
    layout = {"alpha": ["x1", "x2"], "beta": ["y1"], "gamma": ["z1", "z2", "z3"]}
    for sc, classes in layout.items():
        for c in classes:
            d = root / sc / c if bilevel else root / f"{sc}_{c}"
            d.mkdir(parents=True)
            for k in range(3):
                arr = np.repeat(rng.randint(0, 256, (4, 4), dtype=np.uint8), 4, 0)
                img = Image.fromarray(np.repeat(arr, 4, 1))
                if k == 0:  # an RGB JPEG: must be stored byte for byte
                    img.convert("RGB").save(d / f"img{k}.jpg", quality=90)
                else:
                    img.save(d / f"img{k}.png")
            (d / ".hidden").write_text("not an image")
    return layout


def test_folder_plain(tmp_path):
    _make_tree(tmp_path / "imgs", bilevel=False)
    report = write_source_from_folder(
        tmp_path / "imgs", tmp_path / "rec", "flat",
        splits={"TRAIN": ["gamma_z1", "alpha_x1", "alpha_x2"], "VALID": ["beta_y1"],
                "TEST": ["gamma_z2", "gamma_z3"]})
    assert report.classes_per_split == {"TRAIN": 3, "VALID": 1, "TEST": 2}
    spec = load_dataset_spec(tmp_path / "rec" / "flat")
    assert spec.class_names[0] == "gamma_z1" and spec.class_names[3] == "beta_y1"
    raw = [tf.train.Example.FromString(r.numpy())
           for r in tf.data.TFRecordDataset(str(tmp_path / "rec" / "flat" / "0.tfrecords"))]
    assert len(raw) == 3
    jpeg = (tmp_path / "imgs" / "gamma_z1" / "img0.jpg").read_bytes()
    assert raw[0].features.feature["image"].bytes_list.value[0] == jpeg
    assert raw[1].features.feature["image"].bytes_list.value[0][:2] == b"\xff\xd8"
    assert check_source(tmp_path / "rec" / "flat").ok
    # Seeded random split over the sorted folder names.
    r2 = write_source_from_folder(tmp_path / "imgs", tmp_path / "rec2", "flat", seed=5,
                                  valid_fraction=0.2, test_fraction=0.2)
    assert r2.classes_per_split == {"TRAIN": 4, "VALID": 1, "TEST": 1}


def test_folder_bilevel(tmp_path):
    _make_tree(tmp_path / "imgs", bilevel=True)
    report = write_source_from_folder(
        tmp_path / "imgs", tmp_path / "rec", "tree", bilevel=True, splits=(1, 1, 1))
    spec = json.loads((tmp_path / "rec" / "tree" / "dataset_spec.json").read_text())
    assert spec["superclass_names"] == {"0": "alpha", "1": "beta", "2": "gamma"}
    assert spec["class_names"]["0"] == "alpha-x1" and spec["class_names"]["5"] == "gamma-z3"
    assert report.classes_per_split == {"TRAIN": 2, "VALID": 1, "TEST": 3}
    assert check_source(tmp_path / "rec" / "tree").ok


def _tree_with_bad_files(root):
    d = root / "cls"
    d.mkdir(parents=True)
    Image.new("RGB", (6, 5), (1, 2, 3)).save(d / "good.jpg")
    (d / "broken.png").write_bytes(b"not a png")
    good = d / "good.jpg"
    truncated = d / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:-40])
    for name in (".DS_Store", "Thumbs.db", "labels.csv", "notes.txt"):
        (d / name).write_bytes(b"\0junk")
    (root / "other").mkdir()
    Image.new("L", (4, 4), 9).save(root / "other" / "gray.png")
    return d


def test_folder_bad_and_non_image_files_one_policy(tmp_path):
    d = _tree_with_bad_files(tmp_path / "imgs")
    lines = []
    report = write_source_from_folder(tmp_path / "imgs", tmp_path / "rec", "bad",
                                      splits=(2, 0, 0), log=lines.append)
    # Non-images left out and counted; unreadable images named with their reason, skipped.
    assert sorted(w for w, _ in report.skipped) == [
        str(d / n) for n in (".DS_Store", "Thumbs.db", "labels.csv", "notes.txt")]
    assert [w for w, _ in report.unreadable] == [str(d / "broken.png"), str(d / "truncated.jpg")]
    assert "UnidentifiedImageError" in report.unreadable[0][1]
    summary = report.summary()
    assert "4 x not an image file" in summary and "2 unreadable image(s)" in summary
    assert str(d / "broken.png") in summary
    spec = json.loads((tmp_path / "rec" / "bad" / "dataset_spec.json").read_text())
    assert spec["images_per_class"] == {"0": 1, "1": 1}  # what was written
    assert check_source(tmp_path / "rec" / "bad").ok
    report_file = tmp_path / "rec" / "bad" / "conversion_report.txt"
    assert report_file.read_text().startswith(f"{d / 'broken.png'}: UnidentifiedImageError")
    # --strict refuses the first unreadable image and leaves nothing behind.
    with pytest.raises(engine.UnreadableImageError, match="broken.png"):
        write_source_from_folder(tmp_path / "imgs", tmp_path / "strict", "bad",
                                 splits=(2, 0, 0), strict=True, log=lines.append)
    assert not (tmp_path / "strict").exists()


def test_folder_class_without_images_names_the_folder(tmp_path):
    d = tmp_path / "imgs" / "cls"
    d.mkdir(parents=True)
    (d / "readme.txt").write_text("no images here")
    with pytest.raises(SourceWriteError, match=f"class folder {d} holds no image file"):
        write_source_from_folder(tmp_path / "imgs", tmp_path / "rec", "x",
                                 splits=(1, 0, 0))
    (d / "broken.png").write_bytes(b"not a png")
    with pytest.raises(SourceConversionError, match=r"class 0 \(cls\) has no readable image"):
        write_source_from_folder(tmp_path / "imgs", tmp_path / "rec", "x",
                                 splits=(1, 0, 0), log=lambda line: None)
    assert not (tmp_path / "rec" / "x" / "dataset_spec.json").exists()
