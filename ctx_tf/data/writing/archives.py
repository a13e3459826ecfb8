"""Raw files read in place from the archives users download: zip members and tar members.

`read(path, member, span)` is the one way a converter reads a raw file's bytes: a plain file,
a member of a zip file (Omniglot's and MSCOCO's zips), or a byte span of an uncompressed tar.
A tar stores each member's data contiguously, also inside a tar that is itself a member (the
1000 `<synset>.tar` inside ILSVRC2012_img_train.tar), so `tar_of_tars` indexes every image's
offset and size once, in the planning process, and a worker reads one image with one `pread`
instead of scanning the archive. Open zip files and file descriptors are kept once per process.
"""

import functools
import os
import re
import tarfile
import zipfile
import zlib

import numpy as np

from ctx_tf.data.writing.errors import SourceConversionError

_BLOCK = tarfile.BLOCKSIZE


def _version(path):
    """What tells a file from the one that was at `path` before (a replaced download)."""
    stat = os.stat(path)
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=8)
def _open_zip(zip_path, version):  # pylint: disable=unused-argument  # the cache key
    try:
        return zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as e:
        raise SourceConversionError(f"{zip_path}: not a readable zip file ({e})") from e


def open_zip(zip_path):
    """The opened zip file `zip_path`, once per process and file version (its directory is
    read once)."""
    zip_path = os.fspath(zip_path)
    try:
        version = _version(zip_path)
    except OSError as e:
        raise SourceConversionError(f"{zip_path}: not a readable zip file ({e})") from e
    return _open_zip(zip_path, version)


@functools.lru_cache(maxsize=8)
def _descriptor(path, version):  # pylint: disable=unused-argument  # the cache key
    return os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))


def read_span(path, offset, size):
    """`size` bytes of the file `path` from `offset`; an OSError if the file ends before."""
    path = os.fspath(path)
    fd = _descriptor(path, _version(path))
    chunks, done = [], 0
    while done < size:
        chunk = os.pread(fd, size - done, offset + done)
        if not chunk:
            raise OSError(f"{path} ends at byte {offset + done}, {size - done} bytes short "
                          "(truncated download?)")
        chunks.append(chunk)
        done += len(chunk)
    return b"".join(chunks)


def read(path, member=None, span=None):
    """The bytes of a raw file: `path` itself, its zip `member`, or its byte `span`
    `(offset, size)` (a member of an uncompressed tar; `member` then only names it)."""
    if span is not None:
        return read_span(path, *span)
    if member is not None:
        try:
            return open_zip(path).read(member)
        except (zipfile.BadZipFile, zlib.error, KeyError) as e:
            raise OSError(f"{member} of {path} cannot be read ({e})") from e
    with open(path, "rb") as f:
        return f.read()


def zip_names(zip_path):
    """The member names of a zip file (a one-line error if it is not one)."""
    return open_zip(zip_path).namelist()


# ------------------------------------------------------------------ tars read in place


class TarEntries:
    """The regular files of one tar inside an outer tar, in archive order.

    names: member names (a leading "./" removed); offsets: where each member's data starts in
    the OUTER file; sizes: its length in bytes; folders: names of folder members.
    """

    __slots__ = ("names", "offsets", "sizes", "folders")

    def __init__(self, names, offsets, sizes, folders):
        self.names = tuple(names)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.folders = tuple(folders)


def _end_is_clean(tar, size, read_block):
    """True when a tar listing stopped at its end-of-archive block (or its last byte), not at
    a damaged header, which `tarfile` takes silently for the end."""
    if tar.offset >= size:
        return True
    return tar.offset + _BLOCK <= size and read_block(tar.offset) == bytes(_BLOCK)


# The first bytes of the compressed files users may hold instead of a plain tar.
_MAGIC = ((b"\x1f\x8b", "gzip-compressed"), (b"BZh", "bzip2-compressed"),
          (b"\xfd7zXZ", "xz-compressed"), (b"PK\x03\x04", "a zip file"))


def _open_tar(fileobj, name, expected=""):
    try:
        return tarfile.open(fileobj=fileobj, mode="r:")
    except tarfile.ReadError as e:
        fileobj.seek(0)
        head = fileobj.read(8)
        reason = next((kind for magic, kind in _MAGIC if head.startswith(magic)), str(e))
        raise SourceConversionError(f"{name}: not an uncompressed tar archive ({reason})"
                                    + (f"; expected {expected}" if expected else "")) from e


def _name(member):
    return member.name[2:] if member.name.startswith("./") else member.name


def _list_inner(outer, member, path, where):
    """The `TarEntries` of the tar stored as `member` of the open outer tar `outer`, which is
    the file `path`; `where` names the member in messages."""
    start, size = member.offset_data, member.size
    inner = _open_tar(outer.extractfile(member), where)
    names, offsets, sizes, folders = [], [], [], []
    try:
        for entry in inner:
            name = _name(entry)
            if entry.isdir():
                if name not in ("", "."):
                    folders.append(name.rstrip("/"))
                continue
            if not entry.isfile():
                continue
            if entry.offset_data + entry.size > size:
                raise SourceConversionError(
                    f"{where}: member {name} runs past the end of the tar (damaged)")
            names.append(name)
            offsets.append(start + entry.offset_data)
            sizes.append(entry.size)
        if not _end_is_clean(inner, size, lambda at: read_span(path, start + at, _BLOCK)):
            raise SourceConversionError(
                f"{where}: damaged tar header at byte {inner.offset} of the member")
    except tarfile.TarError as e:
        raise SourceConversionError(f"{where}: damaged tar ({e})") from e
    return TarEntries(names, offsets, sizes, folders)


def tar_of_tars(path, member_pattern, member_what, expected):
    """{outer member name: `TarEntries`} of an uncompressed tar whose members are tars.

    Every member must match `member_pattern` (a regular expression); else a one-line
    `SourceConversionError` says it is not a `member_what` and that `expected` was expected,
    as for a file that is no uncompressed tar. Reads only the headers, a few bytes per image;
    a member cut short by the end of the file, or a damaged header inside an inner tar, is an
    error naming the member.
    """
    path = os.fspath(path)
    pattern = re.compile(member_pattern)
    file_size = os.path.getsize(path)
    with open(path, "rb") as f:
        outer = _open_tar(f, path, expected)
        out = {}
        try:
            for member in outer:
                name = _name(member)
                if member.isdir() and name in ("", "."):
                    continue
                if not (member.isfile() and pattern.fullmatch(name)):
                    kind = "folder" if member.isdir() else "member"
                    raise SourceConversionError(
                        f"{path}: {kind} {name} is not a {member_what}; expected {expected}")
                if member.offset_data + member.size > file_size:
                    raise SourceConversionError(
                        f"{path}:{name}: cut short by the end of the file (an incomplete "
                        "download?)")
                out[name] = _list_inner(outer, member, path, f"{path}:{name}")
            if not _end_is_clean(outer, file_size, lambda at: read_span(path, at, _BLOCK)):
                raise SourceConversionError(
                    f"{path}: damaged tar header at byte {outer.offset}")
        except tarfile.TarError as e:
            raise SourceConversionError(f"{path}: damaged tar ({e})") from e
    return out
