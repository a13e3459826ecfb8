"""Tests of ctx_tf.data.checking: every damaged file of a source in one report; reference specs."""

import json
import os

import pytest
import tensorflow as tf

from ctx_tf.data.checking import consistency
from ctx_tf.data.checking.reference_spec import OFFICIAL
from ctx_tf.data.dataset_spec import DatasetSpecError, load_dataset_spec
from ctx_tf.data.reading.record_format import encode_example
from tests.conftest import shared_path
from tests.data.helpers import write_tiny_source


@pytest.fixture
def good_source(tmp_path):
    write_tiny_source(tmp_path, "chk", images_per_class=[3, 4, 3, 4], splits=(2, 1, 1))
    return tmp_path / "chk"


def _rewrite(path, examples):
    with tf.io.TFRecordWriter(str(path)) as w:
        for e in examples:
            w.write(e)


def test_good_source(good_source):
    report = consistency.check_source(good_source)
    assert report.ok and report.num_classes == 4 and report.num_records == 3 + 4 + 3 + 4
    assert report.records_per_split == {"TRAIN": 7, "VALID": 3, "TEST": 4}
    assert report.summary() == (f"check of {good_source}: OK; 4 classes, 14 records "
                                "(TRAIN 7, VALID 3, TEST 4)")


def test_check_missing_and_extra_file(good_source):
    os.remove(good_source / "2.tfrecords")
    (good_source / "9.tfrecords").write_bytes(b"")
    with pytest.raises(consistency.SourceCheckError) as err:
        consistency.check_source(good_source)
    msg = str(err.value)
    assert "2.tfrecords: missing (class 2)" in msg
    assert "9.tfrecords: unexpected file" in msg
    assert len(err.value.report.problems) == 2


def test_every_damaged_file_in_one_report(good_source):
    """Empty, truncated, bit-flipped and missing class files are all reported together."""
    (good_source / "0.tfrecords").write_bytes(b"")
    one = (good_source / "1.tfrecords").read_bytes()
    (good_source / "1.tfrecords").write_bytes(one[:-7])  # cut inside the last record
    two = bytearray((good_source / "2.tfrecords").read_bytes())
    two[len(two) // 2] ^= 0x10  # one bit of image data: the record's data CRC fails
    (good_source / "2.tfrecords").write_bytes(bytes(two))
    os.remove(good_source / "3.tfrecords")
    report = consistency.check_source(good_source, raise_on_error=False)
    assert not report.ok
    by_file = {}
    for p in report.problems:
        by_file.setdefault(os.path.basename(p.split(":")[0]), []).append(p)
    assert sorted(by_file) == ["0.tfrecords", "1.tfrecords", "2.tfrecords", "3.tfrecords"]
    assert by_file["0.tfrecords"] == [
        f"{good_source / '0.tfrecords'}: empty file, spec says 3 records (class 0)"]
    assert "unreadable TFRecord file (class 1): DataLossError" in by_file["1.tfrecords"][0]
    assert "after 3 good record(s); spec says 4" in by_file["1.tfrecords"][0]
    assert "unreadable TFRecord file (class 2): DataLossError" in by_file["2.tfrecords"][0]
    assert "corrupted record" in by_file["2.tfrecords"][0]
    assert by_file["3.tfrecords"] == [f"{good_source / '3.tfrecords'}: missing (class 3)"]
    assert report.num_records == 0 + 3 + report.records_per_split["VALID"]
    with pytest.raises(consistency.SourceCheckError, match="4 problem"):
        consistency.check_source(good_source)


def test_check_wrong_count(good_source):
    records = [r.numpy() for r in tf.data.TFRecordDataset(str(good_source / "1.tfrecords"))]
    _rewrite(good_source / "1.tfrecords", records[:-1])
    with pytest.raises(consistency.SourceCheckError,
                       match=rf"1\.tfrecords: {len(records) - 1} records, spec says "
                             rf"{len(records)} \(class 1\)"):
        consistency.check_source(good_source)


def test_check_wrong_label_and_extra_key(good_source):
    _rewrite(good_source / "0.tfrecords", [encode_example(b"img", 3)] * 3)
    ex = tf.train.Example.FromString(encode_example(b"img", 3))
    ex.features.feature["filename"].bytes_list.value.append(b"a.png")
    _rewrite(good_source / "3.tfrecords", [ex.SerializeToString()] * 4)
    report = consistency.check_source(good_source, raise_on_error=False)
    assert not report.ok
    text = "\n".join(report.problems)
    assert "0.tfrecords: record 0: label 3, expected class id 0" in text
    assert "3.tfrecords: record 0: keys ['filename', 'image', 'label']" in text
    assert report.summary().startswith(f"check of {good_source}: FAILED")


def test_check_name_mismatch_and_corrupt_file(tmp_path, good_source):
    renamed = tmp_path / "other"
    os.rename(good_source, renamed)
    (renamed / "1.tfrecords").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(consistency.SourceCheckError) as err:
        consistency.check_source(renamed)
    msg = str(err.value)
    assert "spec name 'chk' differs from the directory name 'other'" in msg
    assert "1.tfrecords: unreadable TFRecord file (class 1)" in msg


def test_missing_folder_or_spec_names_the_path(tmp_path):
    with pytest.raises(DatasetSpecError, match=f"{tmp_path / 'nope'}: no such source folder"):
        consistency.check_source(tmp_path / "nope")
    (tmp_path / "bare").mkdir()
    with pytest.raises(DatasetSpecError,
                       match=f"{tmp_path / 'bare' / 'dataset_spec.json'}: no such file"):
        consistency.check_source(tmp_path / "bare")


def test_reference_spec_differences(tmp_path, good_source):
    spec = json.loads((good_source / "dataset_spec.json").read_text())
    assert consistency.check_source(good_source,
                                    reference_spec=good_source / "dataset_spec.json").ok
    reference = json.loads(json.dumps(spec))
    reference["class_names"]["1"] = "renamed"
    reference["images_per_class"]["2"] = 9
    reference["images_per_class"]["4"] = 2
    reference["class_names"]["4"] = "extra"
    reference["classes_per_split"]["TEST"] = 2
    ref_path = tmp_path / "ref.json"
    ref_path.write_text(json.dumps(reference))
    report = consistency.check_source(good_source, raise_on_error=False, reference_spec=ref_path)
    label = f"reference spec {ref_path}"
    assert report.problems == []
    assert report.reference_differences == [
        f"{label}: TEST has 1 classes, reference 2",
        f"{label}: class 1 is 'class1', reference 'renamed'",
        f"{label}: class 2 ('class2') has 3 images, reference 9",
        f"{label}: class 4 ('extra') is missing",
    ]
    assert not report.ok and "4 differences from the reference" in report.summary()
    with pytest.raises(consistency.SourceCheckError, match="class 1 is 'class1'"):
        consistency.check_source(good_source, reference_spec=ref_path)
    # A loaded spec works as a reference too.
    assert consistency.check_source(good_source, reference_spec=load_dataset_spec(good_source)).ok


def test_check_official_omniglot_records():
    directory = shared_path("data", "official_records", "omniglot")
    report = consistency.check_source(directory, reference_spec=OFFICIAL)
    assert report.ok and report.num_classes == 1623 and report.num_records == 32460
    assert report.records_per_split == {"TRAIN": 17660, "VALID": 1620, "TEST": 13180}


def test_official_reference_needs_a_meta_dataset_source(good_source):
    with pytest.raises(DatasetSpecError, match=r"--reference_spec=official: 'chk' is not a "
                                               r"Meta-Dataset source; official specs exist for "
                                               r"ilsvrc_2012, "):
        consistency.check_source(good_source, reference_spec=OFFICIAL)
