"""Tests of ctx_tf.data.reading.record_format: the Example wire format and atomic record files."""

import os

import numpy as np
import pytest
import tensorflow as tf

from ctx_tf.data.reading import record_format

FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
}


def test_encode_example_matches_protobuf():
    for image, label in ((b"abc", 7), (b"", 0), (bytes(range(256)) * 700, 2**40 + 3)):
        raw = record_format.encode_example(image, label)
        ex = tf.train.Example.FromString(raw)
        assert sorted(ex.features.feature) == list(record_format.EXAMPLE_KEYS)
        assert ex.features.feature["label"].int64_list.value == [label]
        assert ex.features.feature["image"].bytes_list.value == [image]
        parsed = tf.io.parse_single_example(raw, FEATURES)
        assert int(parsed["label"]) == label and parsed["image"].numpy() == image
        # Same message as protobuf's own serializer, up to the order of the map entries.
        expected = tf.train.Example()
        expected.features.feature["image"].bytes_list.value.append(image)
        expected.features.feature["label"].int64_list.value.append(label)
        assert ex == expected and len(raw) == expected.ByteSize()
    with pytest.raises(ValueError, match="non-negative"):
        record_format.encode_example(b"x", -1)
    with pytest.raises(TypeError, match="must be bytes"):
        record_format.encode_example("x", 0)


def test_varint():
    for value in (0, 1, 127, 128, 300, 2**63 - 1):
        encoded = record_format.varint(value)
        decoded = sum((b & 0x7F) << (7 * i) for i, b in enumerate(encoded))
        assert decoded == value
        assert all(b & 0x80 for b in encoded[:-1]) and not encoded[-1] & 0x80
    assert record_format.varint(300) == b"\xac\x02"


def test_write_tfrecord_counts_and_reads_back(tmp_path):
    path = tmp_path / "3.tfrecords"
    written = [record_format.encode_example(bytes([i]) * i, 3) for i in range(5)]
    assert record_format.write_tfrecord(path, iter(written)) == 5
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(path))] == written
    assert os.listdir(tmp_path) == ["3.tfrecords"]


def test_failed_write_keeps_existing_file(tmp_path):
    path = tmp_path / "0.tfrecords"
    path.write_bytes(b"old")

    def examples():
        yield record_format.encode_example(b"x", 0)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        record_format.write_tfrecord(path, examples())
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["0.tfrecords"]


def test_framing_is_byte_identical_to_tensorflow(tmp_path, rng_seed):
    rng = np.random.default_rng(rng_seed)
    payloads = [b"", b"x"] + [rng.bytes(int(n)) for n in rng.integers(1, 70000, size=6)]
    ours, theirs = tmp_path / "ours.tfrecords", str(tmp_path / "tf.tfrecords")
    assert record_format.write_tfrecord(ours, iter(payloads)) == len(payloads)
    with tf.io.TFRecordWriter(theirs) as w:
        for payload in payloads:
            w.write(payload)
    assert ours.read_bytes() == open(theirs, "rb").read()
    assert list(record_format.read_tfrecord(theirs)) == payloads
    assert record_format.count_records(theirs) == len(payloads)


def test_masked_crc32c_known_value():
    # CRC32C("123456789") = 0xE3069283 (the standard check value), then TFRecord's mask.
    crc = 0xE3069283
    assert record_format.masked_crc32c(b"123456789") == (
        ((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_read_tfrecord_names_damage(tmp_path):
    path = tmp_path / "0.tfrecords"
    record_format.write_tfrecord(path, iter([b"abc", b"defg"]))
    data = bytearray(path.read_bytes())
    data[-6] ^= 1  # a payload byte of the second record
    path.write_bytes(bytes(data))
    got = []
    with pytest.raises(record_format.TFRecordDamage, match="corrupt data checksum at byte 19"):
        got.extend(record_format.read_tfrecord(path))
    assert got == [b"abc"]
    path.write_bytes(bytes(data[:-3]))
    with pytest.raises(record_format.TFRecordDamage, match="truncated record at byte 19"):
        list(record_format.read_tfrecord(path, verify=False))
    assert record_format.count_records(path) is None


def test_read_tfrecord_reads_open_files_and_remote_paths(tmp_path):
    path = tmp_path / "0.tfrecords"
    record_format.write_tfrecord(path, iter([b"abc", b"defg"]))
    with open(path, "rb") as f:
        assert list(record_format.read_tfrecord(f)) == [b"abc", b"defg"]
        assert not f.closed
    # A remote path (TensorFlow's in-memory file system) is read through a GFile opener.
    remote = f"ram://{tmp_path.name}/0.tfrecords"
    with tf.io.gfile.GFile(remote, "wb") as f:
        f.write(path.read_bytes()[:-2])
    opener = lambda: tf.io.gfile.GFile(remote, "rb")  # noqa: E731
    with pytest.raises(record_format.TFRecordDamage,
                       match=f"^{remote}: truncated record at byte 19"):
        list(record_format.read_tfrecord(opener, name=remote))


def test_count_records_reads_the_framing_only(tmp_path):
    assert record_format.count_records(tmp_path / "none.tfrecords") is None
    (tmp_path / "bad.tfrecords").write_bytes(b"\x05" + b"\0" * 7 + b"1234")
    assert record_format.count_records(tmp_path / "bad.tfrecords") is None
