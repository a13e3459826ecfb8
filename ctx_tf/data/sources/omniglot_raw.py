"""Reading Omniglot's three raw forms: the original folders, the original zips, packed arrays.

* folders: `images_background/<alphabet>/characterNN/<id>_<drawer>.png` and the same under
  `images_evaluation/` (the unzipped original release; what the official converter reads);
* zip: `images_background.zip` / `images_evaluation.zip` read in place (members under
  `images_background/` resp. `images_evaluation/`; other top-level members such as
  `__MACOSX/` are ignored);
* npz: `images_background.npz` / `images_evaluation.npz` (bool `images[n_chars, 20, 105, 105]`,
  True = white paper) with `omniglot_index.json` (alphabet -> npz file and first row;
  character `NN` is row `npz_first_row + NN - 1`, drawer `d` is column `d - 1`).

The folder-like forms are read through one tree interface (`entries`, `read`, `where`); the
packed arrays through a row stream that inflates an array only up to the rows asked for.
"""

import json
import os
import pathlib
import zipfile
import zlib

import numpy as np

from ctx_tf.data.writing.errors import SourceConversionError

INDEX_FILENAME = "omniglot_index.json"
SETS = ("images_background", "images_evaluation")
# Accepted raw forms, in the order of preference when several are present.
RAW_FORMS = ("folders", "zip", "npz")
_INDEX_FIELDS = ("alphabet", "set", "npz_file", "npz_first_row", "num_characters")


class RawForm:
    """Which raw form of Omniglot a folder holds (see :func:`detect_raw_form`)."""

    __slots__ = ("raw_dir", "form", "ignored")

    def __init__(self, raw_dir, form, ignored=()):
        self.raw_dir = pathlib.Path(raw_dir)
        self.form = form
        self.ignored = tuple(ignored)

    def describe(self) -> str:
        """One line naming the form used, where, and the complete forms ignored."""
        names = ", ".join(_FORM_MEMBERS[self.form])
        text = f"Omniglot {_FORM_TITLES[self.form]} in {self.raw_dir} ({names})"
        if self.ignored:
            text += "; also present but ignored: " + ", ".join(
                f"{_FORM_TITLES[f]} ({', '.join(_FORM_MEMBERS[f])})" for f in self.ignored)
        return text

    def __repr__(self):
        return f"RawForm({str(self.raw_dir)!r}, {self.form!r}, ignored={self.ignored})"


_FORM_MEMBERS = {
    "folders": tuple(s + "/" for s in SETS),
    "zip": tuple(s + ".zip" for s in SETS),
    "npz": tuple(s + ".npz" for s in SETS) + (INDEX_FILENAME,),
}
_FORM_TITLES = {"folders": "original folders", "zip": "original zip files",
                "npz": "packed arrays"}


def _form_missing(raw_dir, form):
    """The members of ``form`` absent from ``raw_dir`` (a folder for names ending in /)."""
    missing = []
    for member in _FORM_MEMBERS[form]:
        path = raw_dir / member.rstrip("/")
        present = path.is_dir() if member.endswith("/") else path.is_file()
        if not present:
            missing.append(member)
    return missing


def detect_raw_form(raw_dir, form=None) -> RawForm:
    """Detects the raw form of Omniglot in ``raw_dir`` (or checks the requested ``form``).

    The first complete form of :data:`RAW_FORMS` wins; the other complete ones are
    listed in ``.ignored``. Raises :class:`SourceConversionError` naming every path looked for
    when no form (or not the requested one) is complete.
    """
    raw_dir = pathlib.Path(raw_dir)
    if form is not None and form not in RAW_FORMS:
        raise SourceConversionError(
            f"unknown Omniglot raw form {form!r}, expected one of {RAW_FORMS}")
    if not raw_dir.is_dir():
        raise SourceConversionError(f"{raw_dir}: the Omniglot raw folder does not exist")
    missing = {f: _form_missing(raw_dir, f) for f in RAW_FORMS}
    complete = [f for f in RAW_FORMS if not missing[f]]
    if form is not None:
        if missing[form]:
            raise SourceConversionError(
                f"{raw_dir}: Omniglot {_FORM_TITLES[form]} requested, but "
                f"{', '.join(os.path.join(raw_dir, m) for m in missing[form])} not found")
        return RawForm(raw_dir, form, [f for f in complete if f != form])
    if not complete:
        looked = "; or ".join(
            f"{_FORM_TITLES[f]} {', '.join(_FORM_MEMBERS[f])}" for f in RAW_FORMS)
        partial = [f"{_FORM_TITLES[f]}: {', '.join(os.path.join(raw_dir, m) for m in missing[f])} "
                   "not found" for f in RAW_FORMS
                   if len(missing[f]) < len(_FORM_MEMBERS[f])]
        raise SourceConversionError(
            f"{raw_dir}: no Omniglot data found; looked for {looked}"
            + (" (incomplete " + "; ".join(partial) + ")" if partial else ""))
    return RawForm(raw_dir, complete[0], complete[1:])


# ------------------------------------------------------------------ original folders / zips


class FolderTree:
    """One set (``images_background`` ...) as an unzipped folder."""

    def __init__(self, root):
        self.root = pathlib.Path(root)

    def where(self, parts=()):
        return str(self.root.joinpath(*parts))

    def entries(self, parts):
        """{name: is_folder} of the folder ``parts`` (a tuple of names below the root)."""
        path = self.root.joinpath(*parts)
        try:
            with os.scandir(path) as it:  # the folder flag mostly comes without a stat call
                return {e.name: e.is_dir() for e in it}
        except OSError as e:
            raise SourceConversionError(f"{path}: cannot list the folder ({e})") from e

    def read(self, parts):
        try:
            return self.root.joinpath(*parts).read_bytes()
        except OSError as e:
            raise SourceConversionError(f"{self.where(parts)}: cannot read ({e})") from e

    def close(self):
        pass


class ZipTree:
    """One set read in place from its zip file, members under ``<set_name>/``."""

    def __init__(self, zip_path, set_name):
        self.zip_path = pathlib.Path(zip_path)
        self.prefix = set_name + "/"
        try:
            self._zip = zipfile.ZipFile(self.zip_path)
        except (OSError, zipfile.BadZipFile) as e:
            raise SourceConversionError(f"{self.zip_path}: not a readable zip file ({e})") from e
        self._folders = {(): {}}  # parts -> {name: is_folder}
        self._members = {}        # parts of a file -> member name
        for member in self._zip.namelist():
            if not member.startswith(self.prefix):
                continue
            is_folder = member.endswith("/")
            parts = tuple(p for p in member[len(self.prefix):].split("/") if p)
            if not parts:
                continue
            for i in range(len(parts) - 1):  # parents, also when they have no entry of their own
                self._folders[parts[:i]][parts[i]] = True
                self._folders.setdefault(parts[:i + 1], {})
            if is_folder:
                self._folders[parts[:-1]][parts[-1]] = True
                self._folders.setdefault(parts, {})
            else:
                self._folders[parts[:-1]][parts[-1]] = False
                self._members[parts] = member
        if not self._folders[()]:
            self._zip.close()
            raise SourceConversionError(
                f"{self.zip_path}: holds no member under {self.prefix!r} (expected the "
                f"original layout {self.prefix}<alphabet>/<character>/<image>)")

    def where(self, parts=()):
        return f"{self.zip_path}:{self.prefix.rstrip('/')}" + "".join("/" + p for p in parts)

    def entries(self, parts):
        return dict(self._folders[tuple(parts)])

    def member(self, parts):
        """The zip member name of the file `parts`."""
        return self._members[tuple(parts)]

    def read(self, parts):
        try:
            return self._zip.read(self._members[tuple(parts)])
        except (OSError, zipfile.BadZipFile, zlib.error, KeyError) as e:
            raise SourceConversionError(f"{self.where(parts)}: cannot read ({e})") from e

    def close(self):
        self._zip.close()


def _sorted_entries(tree, parts, folders, wrong_kind, empty):
    """Sorted names in the folder ``parts``, which must all be folders (``folders=True``) or
    all files, and at least one; else the error names the first entry of the other kind
    (``wrong_kind`` says why) or the folder (``empty`` says why)."""
    entries = tree.entries(parts)
    for name in sorted(entries):
        if entries[name] != folders:
            raise SourceConversionError(f"{tree.where(tuple(parts) + (name,))}: {wrong_kind}")
    if not entries:
        raise SourceConversionError(f"{tree.where(parts)}: {empty}")
    return sorted(entries)


def subfolders(tree, parts, what):
    """Sorted names of the sub-folders of ``parts``; any file there is an error."""
    return _sorted_entries(tree, parts, True, f"a file where only {what} folders are expected",
                           f"no {what} folders in it")


def character_images(tree, parts):
    """Sorted file names of a character folder (the official converter's image order)."""
    return _sorted_entries(tree, parts, False,
                           "a folder inside a character folder (only image files are expected)",
                           "character folder with no images")


# ------------------------------------------------------------------ packed arrays (npz)


def read_index(omniglot_dir):
    path = pathlib.Path(omniglot_dir) / INDEX_FILENAME
    if not path.is_file():
        raise SourceConversionError(f"{path}: Omniglot index file not found")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise SourceConversionError(f"{path}: invalid JSON ({e})") from e
    alphabets = data.get("alphabets") if isinstance(data, dict) else None
    if not isinstance(alphabets, list) or not alphabets:
        raise SourceConversionError(f"{path}: field 'alphabets' must be a non-empty list")
    out = {}
    for i, entry in enumerate(alphabets):
        if not isinstance(entry, dict):
            raise SourceConversionError(f"{path}: alphabets[{i}] is not an object")
        for field in _INDEX_FIELDS:
            if field not in entry:
                raise SourceConversionError(f"{path}: alphabets[{i}] has no field {field!r}")
        name = entry["alphabet"]
        if entry["set"] not in SETS:
            raise SourceConversionError(
                f"{path}: alphabets[{i}] ({name}): field 'set' is {entry['set']!r}, expected "
                f"one of {SETS}")
        for field in ("npz_first_row", "num_characters"):
            if not isinstance(entry[field], int) or entry[field] < 0:
                raise SourceConversionError(
                    f"{path}: alphabets[{i}] ({name}): field {field!r} must be a "
                    f"non-negative integer, got {entry[field]!r}")
        if name in out:
            raise SourceConversionError(f"{path}: alphabet {name!r} is listed twice")
        out[name] = entry
    return path, out


def npz_member_shape(npz_path, key):
    """Shape of one array of an .npz file, read from its header only."""
    with zipfile.ZipFile(npz_path) as z, _open_npz_member(z, npz_path, key) as member:
        shape, _, _ = _read_npy_header(member, npz_path, key)
    return shape


def _open_npz_member(archive, npz_path, key):
    """The stream of array `key` inside an opened .npz archive."""
    try:
        return archive.open(key + ".npy")
    except KeyError as e:
        raise SourceConversionError(f"{npz_path}: no array {key!r}") from e


def _read_npy_header(member, npz_path, key):
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(member)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(member)
    raise SourceConversionError(f"{npz_path}: array {key!r} has unsupported .npy version "
                                f"{version}")


def iter_npz_rows(npz_path, key, rows):
    """Yields (row, array) for the wanted first-axis ``rows`` of one array of an .npz file.

    The member is decompressed as a stream and only up to the last wanted row, so a few
    classes are read without inflating the whole array, and memory stays at one row.
    """
    wanted = sorted(set(rows))
    if not wanted:
        return
    with zipfile.ZipFile(npz_path) as z, _open_npz_member(z, npz_path, key) as member:
        shape, fortran_order, dtype = _read_npy_header(member, npz_path, key)
        if fortran_order or dtype != np.bool_ or len(shape) != 4:
            raise SourceConversionError(
                f"{npz_path}: field {key!r} must be a C-ordered bool array [chars, drawers, "
                f"H, W], got shape {shape}, dtype {dtype}, fortran_order={fortran_order}")
        if wanted[-1] >= shape[0]:
            raise SourceConversionError(
                f"{npz_path}: row {wanted[-1]} requested, field {key!r} has {shape[0]} rows")
        row_bytes = int(np.prod(shape[1:])) * dtype.itemsize
        position = 0
        for row in wanted:
            while position < row:  # skip rows nobody asked for
                member.read(row_bytes)
                position += 1
            data = member.read(row_bytes)
            if len(data) != row_bytes:
                raise SourceConversionError(
                    f"{npz_path}: field {key!r} is truncated at row {row}")
            position += 1
            yield row, np.frombuffer(data, dtype=dtype).reshape(shape[1:])




_ROW_STREAMS = {}  # npz path -> [next row, stream]: one open stream per file and process


def npz_row(npz_path, row):
    """The drawings of one character (a row of the `images` array of an npz file).

    Rising rows continue one decompression stream, so a process converting its classes in
    class order inflates each file once; a lower row starts a new stream.
    """
    key = os.fspath(npz_path)
    stream = _ROW_STREAMS.get(key)
    if stream is None or stream[0] > row:
        num_rows = npz_member_shape(npz_path, "images")[0]
        stream = _ROW_STREAMS[key] = [row, iter_npz_rows(npz_path, "images",
                                                         range(row, max(num_rows, row + 1)))]
    for found, drawings in stream[1]:
        if found == row:
            stream[0] = row + 1
            return drawings
    del _ROW_STREAMS[key]
    raise SourceConversionError(f"{npz_path}: no row {row} in field 'images'")
