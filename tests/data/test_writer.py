"""Tests of ctx_tf.data.writer: arrays and folder trees -> sources, splits, overwriting, CLI."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from ctx_tf.data import writer
from ctx_tf.data.dataset_spec import DatasetSpecError, load_dataset_spec
from ctx_tf.data.sources import engine
from ctx_tf.data.sources.common import SourceConversionError

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
    report = writer.write_source_from_arrays(tmp_path, "toy", arrays, names, splits=(2, 2, 1))
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
    assert writer.check_source(out).ok


def test_arrays_rgb_lists_and_invert(tmp_path):
    arrays = make_arrays(3, rgb=True)
    per_image_lists = [list(a) for a in arrays]
    writer.write_source_from_arrays(tmp_path, "rgb", per_image_lists, splits=(1, 1, 1),
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
    report = writer.write_source_from_arrays(
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
    assert writer.check_source(tmp_path / "bi").ok


def test_seeded_split_written_twice_gives_identical_files(tmp_path):
    arrays = make_arrays(6)
    writer.write_source_from_arrays(tmp_path / "r1", "s", arrays, seed=11)
    writer.write_source_from_arrays(tmp_path / "r2", "s", arrays, seed=11)
    for f in sorted(os.listdir(tmp_path / "r1" / "s")):
        if f.endswith(".tfrecords"):
            assert (tmp_path / "r1" / "s" / f).read_bytes() == (
                tmp_path / "r2" / "s" / f).read_bytes()


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
    report = writer.write_source_from_folder(
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
    assert writer.check_source(tmp_path / "rec" / "flat").ok
    # Seeded random split over the sorted folder names.
    r2 = writer.write_source_from_folder(tmp_path / "imgs", tmp_path / "rec2", "flat", seed=5,
                                         valid_fraction=0.2, test_fraction=0.2)
    assert r2.classes_per_split == {"TRAIN": 4, "VALID": 1, "TEST": 1}


def test_folder_bilevel(tmp_path):
    _make_tree(tmp_path / "imgs", bilevel=True)
    report = writer.write_source_from_folder(
        tmp_path / "imgs", tmp_path / "rec", "tree", bilevel=True, splits=(1, 1, 1))
    spec = json.loads((tmp_path / "rec" / "tree" / "dataset_spec.json").read_text())
    assert spec["superclass_names"] == {"0": "alpha", "1": "beta", "2": "gamma"}
    assert spec["class_names"]["0"] == "alpha-x1" and spec["class_names"]["5"] == "gamma-z3"
    assert report.classes_per_split == {"TRAIN": 2, "VALID": 1, "TEST": 3}
    assert writer.check_source(tmp_path / "rec" / "tree").ok


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
    report = writer.write_source_from_folder(tmp_path / "imgs", tmp_path / "rec", "bad",
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
    assert writer.check_source(tmp_path / "rec" / "bad").ok
    report_file = tmp_path / "rec" / "bad" / "conversion_report.txt"
    assert report_file.read_text().startswith(f"{d / 'broken.png'}: UnidentifiedImageError")
    # --strict refuses the first unreadable image and leaves nothing behind.
    with pytest.raises(engine.UnreadableImageError, match="broken.png"):
        writer.write_source_from_folder(tmp_path / "imgs", tmp_path / "strict", "bad",
                                        splits=(2, 0, 0), strict=True, log=lines.append)
    assert not (tmp_path / "strict").exists()


def test_folder_class_without_images_names_the_folder(tmp_path):
    d = tmp_path / "imgs" / "cls"
    d.mkdir(parents=True)
    (d / "readme.txt").write_text("no images here")
    with pytest.raises(writer.SourceWriteError, match=f"class folder {d} holds no image file"):
        writer.write_source_from_folder(tmp_path / "imgs", tmp_path / "rec", "x",
                                        splits=(1, 0, 0))
    (d / "broken.png").write_bytes(b"not a png")
    with pytest.raises(SourceConversionError, match=r"class 0 \(cls\) has no readable image"):
        writer.write_source_from_folder(tmp_path / "imgs", tmp_path / "rec", "x",
                                        splits=(1, 0, 0), log=lambda line: None)
    assert not (tmp_path / "rec" / "x" / "dataset_spec.json").exists()


def test_no_overwrite_and_overwrite(tmp_path):
    arrays = make_arrays(4)
    writer.write_source_from_arrays(tmp_path, "src", arrays, splits=(2, 1, 1))
    before = {f: (tmp_path / "src" / f).read_bytes() for f in os.listdir(tmp_path / "src")}
    with pytest.raises(FileExistsError, match="overwrite"):
        writer.write_source_from_arrays(tmp_path, "src", arrays[:2], splits=(1, 1, 0))
    after = {f: (tmp_path / "src" / f).read_bytes() for f in os.listdir(tmp_path / "src")}
    assert before == after
    writer.write_source_from_arrays(tmp_path, "src", arrays[:2], splits=(1, 1, 0),
                                    overwrite=True)
    assert sorted(os.listdir(tmp_path / "src")) == ["0.tfrecords", "1.tfrecords",
                                                    "dataset_spec.json"]
    assert writer.check_source(tmp_path / "src").ok
    # An empty existing directory is fine.
    (tmp_path / "empty").mkdir()
    writer.write_source_from_arrays(tmp_path, "empty", arrays[:1], splits=(1, 0, 0))


def _cli(argv):
    from absl import flags
    fv = writer.define_flags(flags.FlagValues())
    fv(["writer"] + argv)
    return writer.run_cli(fv)


def test_cli_write_and_check(tmp_path, capsys):
    _make_tree(tmp_path / "imgs", bilevel=True)
    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps({"train": ["gamma", "beta"], "valid": [], "test": ["alpha"]}))
    assert _cli([f"--images_root={tmp_path / 'imgs'}", f"--records_root={tmp_path / 'rec'}",
                 "--name=cli", "--bilevel", "--seed=1", "--valid_fraction=0.34",
                 "--test_fraction=0.34"]) == 0
    out = capsys.readouterr().out
    assert "6 classes, 18 images" in out and "VALID: 2 classes in 1 superclasses" in out
    assert _cli([f"--images_root={tmp_path / 'imgs'}", f"--records_root={tmp_path / 'rec'}",
                 "--name=cli2", "--bilevel", f"--splits_file={splits}", "--invert"]) == 0
    spec = load_dataset_spec(tmp_path / "rec" / "cli2")
    assert spec.class_names[0] == "gamma-z1" and list(spec.get_classes("TEST")) == [4, 5]
    (tmp_path / "rec" / "cli2" / "0.tfrecords").unlink()
    assert _cli([f"--check={tmp_path / 'rec' / 'cli2'}"]) == 1
    assert "0.tfrecords: missing (class 0)" in capsys.readouterr().out
    # The cli source checked against cli2's spec: same classes, different splits.
    assert _cli([f"--check={tmp_path / 'rec' / 'cli'}",
                 f"--reference_spec={tmp_path / 'rec' / 'cli2' / 'dataset_spec.json'}"]) == 1
    assert "reference spec" in capsys.readouterr().out


def test_cli_user_mistakes_name_the_culprit(tmp_path):
    with pytest.raises(DatasetSpecError, match=f"{tmp_path / 'none'}: no such source folder"):
        _cli([f"--check={tmp_path / 'none'}"])
    with pytest.raises(writer.SourceWriteError, match="--reference_spec only goes with"):
        _cli([f"--reference_spec={tmp_path}"])
    with pytest.raises(writer.SourceWriteError, match="missing flags: --images_root"):
        _cli([f"--records_root={tmp_path}", "--name=x"])


@pytest.mark.slow
def test_cli_subprocess(tmp_path):
    writer.write_source_from_arrays(tmp_path, "sub", make_arrays(2), splits=(1, 1, 0))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-m", "ctx_tf.data.writer",
                          f"--check={tmp_path / 'sub'}"],
                         capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    assert ": OK; 2 classes" in out.stdout
    out = subprocess.run([sys.executable, "-m", "ctx_tf.data.writer",
                          f"--check={tmp_path / 'missing'}"],
                         capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        f"ctx_tf.data.writer: error: {tmp_path / 'missing'}: no such source folder (expected a "
        "folder holding dataset_spec.json and the class record files)")
    assert "Traceback" not in out.stderr
