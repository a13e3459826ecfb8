"""What every source converter shares: its error type and the checks of expected raw files."""

import os
import struct


class SourceConversionError(ValueError):
    """Bad raw data or a bad conversion request; the message names the path, class or flag."""


def require_file(path, what):
    """Returns `path` if it is a file; else one line naming it and what it should hold."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SourceConversionError(f"{path}: not found; expected {what}")
    return path


def require_dir(path, what):
    """Returns `path` if it is a folder; else one line naming it and what it should hold."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise SourceConversionError(f"{path}: folder not found; expected {what}")
    return path


def count_records(path):
    """The number of records of a TFRecord file, read from its framing (no payload is
    read or decoded); None when the file is missing or its framing is truncated."""
    try:
        size = os.path.getsize(path)
        count, position = 0, 0
        with open(path, "rb") as f:
            while position < size:
                header = f.read(8)
                if len(header) < 8:
                    return None
                (length,) = struct.unpack("<Q", header)
                position += 12 + length + 4  # length, its CRC, the payload, its CRC
                if position > size:
                    return None
                f.seek(position)
                count += 1
        return count
    except OSError:
        return None
