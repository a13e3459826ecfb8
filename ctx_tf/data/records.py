"""The record wire format of a Meta-Dataset source, and atomic writing of record files.

Every record is a serialized ``tf.train.Example`` with exactly two features: ``image`` (the
encoded image bytes) and ``label`` (the absolute class id, int64). One file per class,
``{class_id}.tfrecords``, written with TensorFlow's TFRecord framing (length, CRC32C).
"""

import tensorflow as tf

from ctx_tf.errors import UserError
from ctx_tf.files import atomic_write_with

EXAMPLE_KEYS = ("image", "label")


class SourceWriteError(UserError, ValueError):
    """Bad input to a writer (names the file, class or field at fault)."""


def varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def length_delimited(tag: int, payload: bytes) -> bytes:
    """One protobuf length-delimited field: tag byte, varint length, payload."""
    return bytes([tag]) + varint(len(payload)) + payload


def encode_example(image_bytes, label) -> bytes:
    """Serializes a ``tf.train.Example`` with exactly ``image`` (bytes) and ``label`` (int64).

    The protobuf wire format is written directly: protobuf's own serializer emits the entries
    of the ``feature`` map in an order that changes from one process to the next, which would
    make the record files irreproducible. Here the ``label`` entry always comes first, then
    ``image`` - the order found in the official Omniglot records - so converting the same data
    twice gives identical files. ``tf.train.Example.FromString`` reads the result back.
    """
    if not isinstance(image_bytes, (bytes, bytearray, memoryview)):
        raise TypeError(f"image_bytes must be bytes (an encoded image), not "
                        f"{type(image_bytes).__name__}")
    label = int(label)
    if label < 0:
        raise ValueError(f"label must be a non-negative class id, got {label}")
    # Feature: int64_list = field 3, bytes_list = field 1; Int64List.value is packed.
    label_feature = length_delimited(0x1A, length_delimited(0x0A, varint(label)))
    image_feature = length_delimited(0x0A, length_delimited(0x0A, bytes(image_bytes)))
    # Features.feature map entries (field 1): key = field 1, value = field 2.
    entries = b"".join(
        length_delimited(0x0A, length_delimited(0x0A, key) + length_delimited(0x12, value))
        for key, value in ((b"label", label_feature), (b"image", image_feature)))
    return length_delimited(0x0A, entries)  # Example.features = field 1


def write_tfrecord(path, serialized_examples) -> int:
    """Writes the records of ``serialized_examples`` to ``path`` atomically; returns their count.

    If the iterable raises, the previous file at ``path`` (if any) is left untouched.
    """
    count = 0

    def write(tmp):
        nonlocal count
        with tf.io.TFRecordWriter(tmp) as w:
            for record in serialized_examples:
                w.write(record)
                count += 1

    atomic_write_with(path, write)
    return count
