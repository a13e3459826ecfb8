"""The record wire format of a Meta-Dataset source, and atomic writing of record files.

Every record is a serialized ``tf.train.Example`` with exactly two features: ``image`` (the
encoded image bytes) and ``label`` (the absolute class id, int64). One file per class,
``{class_id}.tfrecords``, in TensorFlow's TFRecord framing, written and read here in plain
Python (no TensorFlow, so converter worker processes start in well under a second): each
record is its length (uint64, little-endian), the masked CRC32C of those 8 bytes, the payload
and the masked CRC32C of the payload (uint32s, little-endian).
"""

import os
import struct

import google_crc32c

from ctx_tf.errors import UserError
from ctx_tf.files import atomic_write_with, is_remote

EXAMPLE_KEYS = ("image", "label")


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


_MASK_DELTA = 0xA282EAD8


def masked_crc32c(data) -> int:
    """TFRecord's checksum: the CRC32C rotated right by 15 bits plus a constant (mod 2**32),
    so that a CRC of data that holds CRCs stays unlike them."""
    crc = google_crc32c.value(bytes(data))
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(record) -> bytes:
    """One record in TFRecord framing."""
    header = struct.pack("<Q", len(record))
    return b"".join((header, struct.pack("<I", masked_crc32c(header)), bytes(record),
                     struct.pack("<I", masked_crc32c(record))))


class TFRecordDamage(UserError, ValueError):
    """A TFRecord file whose framing or checksums are wrong (names the file and offset).

    `problem` is the message without the file name (what is wrong, at which byte)."""

    def __init__(self, name, problem):
        super().__init__(f"{name}: {problem}")
        self.problem = problem


def read_tfrecord(source, verify=True, name=None):
    """Yields the records of a TFRecord file; raises TFRecordDamage at a truncated record or
    (with `verify`) a checksum mismatch, after yielding the records before it.

    `source` is a local path, an opened binary file (read from its position, left open) or a
    function returning one (e.g. a `tf.io.gfile.GFile` opener; closed when reading ends).
    `name` names the file in errors (default: the path, or the file's `name`).
    """
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source) if name is None else name
        with open(source, "rb") as f:
            yield from _read_records(f, verify, name)
    elif callable(source):
        with source() as f:
            yield from _read_records(f, verify, name or getattr(f, "name", "TFRecord file"))
    else:
        yield from _read_records(source, verify, name or getattr(source, "name", "TFRecord file"))


HEADER_BYTES = 12  # length (8) and its masked CRC (4)
FRAMING_BYTES = 16  # header and the payload's masked CRC (4)


def record_length(header, verify=True):
    """The payload length of a 12-byte record header; None when (with `verify`) its checksum
    is wrong."""
    (length,) = struct.unpack("<Q", header[:8])
    if verify and struct.unpack("<I", header[8:12])[0] != masked_crc32c(header[:8]):
        return None
    return length


def unframe(framed, name, offset, verify=True):
    """The payload of one whole framed record (`framed`, read from byte `offset` of file
    `name`); raises TFRecordDamage when it is cut short or (with `verify`) a checksum is wrong."""
    if len(framed) < HEADER_BYTES:
        raise TFRecordDamage(name, f"truncated record header at byte {offset}")
    length = record_length(framed, verify)
    if length is None:
        raise TFRecordDamage(name, f"corrupt length checksum at byte {offset}")
    if len(framed) < FRAMING_BYTES + length:
        raise TFRecordDamage(name, f"truncated record at byte {offset}")
    payload = framed[HEADER_BYTES:HEADER_BYTES + length]
    footer = framed[HEADER_BYTES + length:FRAMING_BYTES + length]
    if verify and struct.unpack("<I", footer)[0] != masked_crc32c(payload):
        raise TFRecordDamage(name, f"corrupt data checksum at byte {offset}")
    return payload


def _read_records(f, verify, name):
    offset = 0
    while True:
        header = f.read(HEADER_BYTES)
        if not header:
            return
        length = record_length(header, verify) if len(header) == HEADER_BYTES else 0
        rest = f.read(length + 4) if length is not None else b""
        payload = unframe(header + rest, name, offset, verify)
        yield payload
        offset += FRAMING_BYTES + len(payload)


def count_records(path):
    """The number of records of a TFRecord file from its lengths only (no payload is read);
    None when the file is missing, unreadable or its framing is truncated."""
    try:
        size = os.path.getsize(path)
        count, position = 0, 0
        with open(path, "rb") as f:
            while position < size:
                header = f.read(8)
                if len(header) < 8:
                    return None
                position += 16 + struct.unpack("<Q", header)[0]
                if position > size:
                    return None
                f.seek(position)
                count += 1
        return count
    except OSError:
        return None


def _open_for_writing(path):
    if is_remote(path):
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        return tf.io.gfile.GFile(path, "wb")
    return open(path, "wb")


def write_tfrecord(path, serialized_examples) -> int:
    """Writes the records of ``serialized_examples`` to ``path`` atomically; returns their count.

    If the iterable raises, the previous file at ``path`` (if any) is left untouched.
    """
    count = 0

    def write(tmp):
        nonlocal count
        with _open_for_writing(tmp) as f:
            for record in serialized_examples:
                f.write(frame(record))
                count += 1

    atomic_write_with(path, write)
    return count
