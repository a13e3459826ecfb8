"""Tests of the conversion engine on a toy source (tests/data/sources/toy_source.py)."""

import json
import os
import subprocess
import sys

import pytest

from ctx_tf.data.checking.consistency import check_source
from ctx_tf.data.dataset_spec import load_dataset_spec
from ctx_tf.data.reading.record_format import count_records
from ctx_tf.data.writing import engine
from ctx_tf.data.writing.errors import SourceConversionError
from tests.data.sources import toy_source


def _files(directory):
    return {p: open(os.path.join(directory, p), "rb").read() for p in sorted(os.listdir(directory))}


def _convert(raw, root, lines=None, **kwargs):
    return engine.convert(toy_source.plan(raw), root, spec_path="./toy",
                          log=(lines.append if lines is not None else lambda _: None), **kwargs)


@pytest.fixture(name="raw")
def _raw(tmp_path):
    return toy_source.make_raw(str(tmp_path / "raw"))


def test_writes_every_class_and_the_spec_last(raw, tmp_path):
    lines = []
    report = _convert(raw, tmp_path / "rec", lines, progress_every=0.0)
    out = tmp_path / "rec" / "toy"
    assert check_source(out).ok
    spec = load_dataset_spec(str(out))
    assert [spec.num_images(i) for i in range(5)] == [2, 3, 4, 5, 6]
    assert report.classes_per_split == {"TRAIN": 3, "VALID": 1, "TEST": 1}
    assert (report.num_images, report.classes_written, report.classes_resumed) == (20, 5, 0)
    assert len(report.skipped) == 10 and not report.unreadable
    assert "left out 10 file(s) or record(s) as the official converter does:" in report.summary()
    assert lines[0].startswith(f"converting toy into {out}: 5 classes, 0 already complete, "
                               "5 to write (20 images)")
    assert any("images/s, ETA" in line and "classes 5/5" in line for line in lines)
    assert not (out / engine.REPORT_FILENAME).exists()
    assert count_records(out / "4.tfrecords") == 6
    # A rerun keeps everything and writes the same bytes.
    before = _files(out)
    report = _convert(raw, tmp_path / "rec")
    assert (report.classes_written, report.classes_resumed) == (0, 5)
    assert _files(out) == before


def test_resume_keeps_complete_classes_and_redoes_the_rest(raw, tmp_path):
    _convert(raw, tmp_path / "full")
    full = _files(tmp_path / "full" / "toy")
    _convert(raw, tmp_path / "rec")
    out = tmp_path / "rec" / "toy"
    # The state of a killed run: no spec, a class never written, a half-written temporary
    # file, and a class file whose record count does not match the manifest.
    os.remove(out / "dataset_spec.json")
    os.remove(out / "3.tfrecords")
    (out / ".3.tfrecords.x1y2.tmp").write_bytes(b"half")
    with open(out / "4.tfrecords", "r+b") as f:
        f.truncate(100)
    mtimes = {i: os.stat(out / f"{i}.tfrecords").st_mtime_ns for i in range(3)}
    lines = []
    report = _convert(raw, tmp_path / "rec", lines)
    assert (report.classes_written, report.classes_resumed) == (2, 3)
    assert "3 already complete, 2 to write (11 images)" in lines[0]
    assert {i: os.stat(out / f"{i}.tfrecords").st_mtime_ns for i in range(3)} == mtimes
    assert _files(out) == full


def test_other_plan_or_foreign_folder_needs_overwrite(raw, tmp_path):
    _convert(raw, tmp_path / "rec")
    os.rename(os.path.join(raw, "class04"), os.path.join(raw, "class05"))
    with open(os.path.join(raw, "annotations.txt"), "w", encoding="utf-8") as f:
        f.write("class00\nclass01\nclass02\nclass03\nclass05\n")
    with pytest.raises(SourceConversionError, match="earlier conversion of other raw data"):
        _convert(raw, tmp_path / "rec")
    assert _convert(raw, tmp_path / "rec", overwrite=True).classes_written == 5
    (tmp_path / "other" / "toy").mkdir(parents=True)
    (tmp_path / "other" / "toy" / "mine.txt").write_text("x")
    with pytest.raises(SourceConversionError, match=r"toy: folder exists, is not empty .*--overwrite"):
        _convert(raw, tmp_path / "other")


def test_corrupt_image_is_named_skipped_and_not_counted(raw, tmp_path):
    corrupt = os.path.join(raw, "class02", "002.jpeg")
    data = open(corrupt, "rb").read()
    with open(corrupt, "wb") as f:
        f.write(data[:len(data) // 2])  # a truncated JPEG still opens; only decoding fails
    report = _convert(raw, tmp_path / "rec")
    out = tmp_path / "rec" / "toy"
    assert [u[0] for u in report.unreadable] == [corrupt]
    assert f"1 unreadable image(s)" in report.summary() and corrupt in report.summary()
    assert (out / engine.REPORT_FILENAME).read_text().startswith(f"{corrupt}: OSError")
    spec = json.loads((out / "dataset_spec.json").read_text())
    assert spec["images_per_class"]["2"] == 3 and count_records(out / "2.tfrecords") == 3
    assert check_source(out).ok
    # Refused with strict: nothing is left behind, not even the records root.
    with pytest.raises(SourceConversionError, match=f"{corrupt}: unreadable image .*--strict"):
        _convert(raw, tmp_path / "strict" / "root", strict=True)
    assert not (tmp_path / "strict").exists()


def test_class_without_readable_images_is_an_error(raw, tmp_path):
    for name in os.listdir(os.path.join(raw, "class00")):
        with open(os.path.join(raw, "class00", name), "wb") as f:
            f.write(b"not an image")
    with pytest.raises(SourceConversionError, match=r"class 0 \(class00\) has no readable image"):
        _convert(raw, tmp_path / "rec")
    assert not (tmp_path / "rec" / "toy" / "dataset_spec.json").exists()


def test_slice_and_bad_ids(raw, tmp_path):
    report = _convert(raw, tmp_path / "rec", class_ids=[4, 1])
    assert report.spec is None and report.num_images == 9
    assert sorted(p for p in os.listdir(tmp_path / "rec" / "toy") if "tfrecords" in p) == [
        "1.tfrecords", "4.tfrecords"]
    with pytest.raises(SourceConversionError, match=r"toy: class id 7 out of range \[0, 5\)"):
        _convert(raw, tmp_path / "rec", class_ids=[7])


def test_missing_annotation_names_the_file(raw):
    os.remove(os.path.join(raw, "annotations.txt"))
    with pytest.raises(SourceConversionError) as e:
        toy_source.plan(raw)
    assert str(e.value) == (f"{os.path.join(raw, 'annotations.txt')}: not found; expected the "
                            "class names, one a line")


def test_one_or_two_workers_write_identical_files(raw, tmp_path):
    _convert(raw, tmp_path / "one", workers=1)
    lines = []
    _convert(raw, tmp_path / "two", lines, workers=2)
    assert "with 2 worker(s)" in lines[0]
    assert _files(tmp_path / "one" / "toy") == _files(tmp_path / "two" / "toy")


def test_workers_import_no_tensorflow():
    # A spawned worker imports the engine and the source modules of its plan; TensorFlow would
    # cost each worker seconds of start-up.
    modules = ", ".join(["ctx_tf.data.writing.engine", "ctx_tf.data.writing.folder"] + [
        f"ctx_tf.data.sources.{m}" for m in (
            "ilsvrc", "mini_imagenet", "mscoco", "aircraft", "cu_birds", "dtd", "vgg_flower",
            "traffic_sign", "quickdraw", "fungi", "omniglot", "__main__")])
    code = (f"import sys, {modules}\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
