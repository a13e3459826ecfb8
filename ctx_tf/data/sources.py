"""Converters for known datasets into Meta-Dataset's record format.

Omniglot
--------
:func:`convert_omniglot` accepts Omniglot in three raw forms, found in ``raw_dir``:

* ``folders``: the two unzipped folders of the original release (GitHub brendenlake/omniglot),
  ``images_background/<alphabet>/characterNN/<id>_<drawer>.png`` and the same under
  ``images_evaluation/``; this is what the official converter reads;
* ``zip``: the two downloads ``images_background.zip`` / ``images_evaluation.zip`` themselves,
  read in place (members under ``images_background/`` resp. ``images_evaluation/``; other
  top-level members such as ``__MACOSX/`` are ignored);
* ``npz``: the packed arrays ``images_background.npz`` and ``images_evaluation.npz`` (bool
  ``images[n_chars, 20, 105, 105]``, True = white paper) with the index ``omniglot_index.json``
  (alphabet name -> npz file and first row; character ``NN`` of an alphabet is row
  ``npz_first_row + NN - 1``, drawer ``d`` is column ``d - 1``).

The form is detected (:func:`omniglot_raw_form`); when several are complete, the first of
:data:`OMNIGLOT_RAW_FORMS` (folders, then zip, then npz) is used and the others are reported
as ignored. Every form gives the layout of the official converter (google-research/
meta-dataset ``OmniglotConverter``), byte for byte for the same images:

* alphabets are superclasses; TRAIN = the ``images_background`` alphabets other than the five
  validation alphabets, sorted; VALID = :data:`OMNIGLOT_VALID_ALPHABETS` in that fixed order;
  TEST = the ``images_evaluation`` alphabets, sorted;
* classes (characters) are numbered alphabet by alphabet in that order, character folders
  sorted by name inside an alphabet, named ``"<alphabet>-<character folder>"``; the images of
  a class are its files sorted by name (drawer order 01..20 for the original names);
* every image is decoded by Pillow, converted to RGB, colour-inverted (white strokes on black)
  and saved as JPEG with Pillow's defaults (quality 75), as the official converter does with
  ``invert_img=True``; the spec counts the files of each character folder.

Names are sorted as Python strings, exactly like the official converter. Unlike it, the
folder forms reject, naming the path, what it would crash on or silently count: a file where
an alphabet or character folder is expected, an alphabet without character folders, a
character folder that is empty or holds a folder, and a file Pillow cannot read as an image
(checked when that class is converted). The number of alphabets (30 + 20 in the release) is
not enforced. For the npz form the class order is derived from these rules, not read from
the index.

Command line::

  python -m ctx_tf.data.sources --source=omniglot --raw_dir=DIR --records_root=DIR \
      [--alphabets=Latin,Greek] [--overwrite]
"""

import json
import os
import pathlib
import warnings
import zipfile
import zlib

import numpy as np

from ctx_tf.data import writer

OMNIGLOT_NAME = "omniglot"
OMNIGLOT_INDEX = "omniglot_index.json"
OMNIGLOT_SETS = ("images_background", "images_evaluation")
# Alphabets per set in the original release (the official converter asserts these counts).
OMNIGLOT_NUM_ALPHABETS = (30, 20)
# Accepted raw forms, in the order of preference when several are present.
OMNIGLOT_RAW_FORMS = ("folders", "zip", "npz")
# The validation alphabets, in the order the official converter numbers them.
OMNIGLOT_VALID_ALPHABETS = (
    "Blackfoot_(Canadian_Aboriginal_Syllabics)",
    "Ojibwe_(Canadian_Aboriginal_Syllabics)",
    "Inuktitut_(Canadian_Aboriginal_Syllabics)",
    "Tagalog",
    "Alphabet_of_the_Magi",
)
_INDEX_FIELDS = ("alphabet", "set", "npz_file", "npz_first_row", "num_characters")


class SourceConversionError(ValueError):
    """Bad raw data for a known-source converter (names the file and field at fault)."""


class OmniglotClass:
    """One Omniglot character in Meta-Dataset order.

    ``npz_file`` / ``npz_row`` locate it in the npz form (None otherwise); ``set_name`` and
    ``image_files`` (file names inside ``<set_name>/<alphabet>/<character>``, sorted) locate it
    in the folder and zip forms (``image_files`` is None for the npz form).
    """

    __slots__ = ("class_id", "name", "alphabet", "superclass_id", "split", "npz_file",
                 "npz_row", "set_name", "character", "image_files")

    def __init__(self, class_id, name, alphabet, superclass_id, split, npz_file=None,
                 npz_row=None, set_name=None, character=None, image_files=None):
        self.class_id = class_id
        self.name = name
        self.alphabet = alphabet
        self.superclass_id = superclass_id
        self.split = split
        self.npz_file = npz_file
        self.npz_row = npz_row
        self.set_name = set_name
        self.character = character
        self.image_files = image_files

    def __repr__(self):
        if self.image_files is None:
            where = f"{self.npz_file}[{self.npz_row}]"
        else:
            where = f"{self.set_name}/{self.alphabet}/{self.character} ({len(self.image_files)})"
        return f"OmniglotClass({self.class_id}, {self.name!r}, {self.split}, {where})"


# ------------------------------------------------------------------ raw form detection


class OmniglotRawForm:
    """Which raw form of Omniglot a folder holds (see :func:`omniglot_raw_form`)."""

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
        return f"OmniglotRawForm({str(self.raw_dir)!r}, {self.form!r}, ignored={self.ignored})"


_FORM_MEMBERS = {
    "folders": tuple(s + "/" for s in OMNIGLOT_SETS),
    "zip": tuple(s + ".zip" for s in OMNIGLOT_SETS),
    "npz": tuple(s + ".npz" for s in OMNIGLOT_SETS) + (OMNIGLOT_INDEX,),
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


def omniglot_raw_form(raw_dir, form=None) -> OmniglotRawForm:
    """Detects the raw form of Omniglot in ``raw_dir`` (or checks the requested ``form``).

    The first complete form of :data:`OMNIGLOT_RAW_FORMS` wins; the other complete ones are
    listed in ``.ignored``. Raises :class:`SourceConversionError` naming every path looked for
    when no form (or not the requested one) is complete.
    """
    raw_dir = pathlib.Path(raw_dir)
    if form is not None and form not in OMNIGLOT_RAW_FORMS:
        raise SourceConversionError(
            f"unknown Omniglot raw form {form!r}, expected one of {OMNIGLOT_RAW_FORMS}")
    if not raw_dir.is_dir():
        raise SourceConversionError(f"{raw_dir}: the Omniglot raw folder does not exist")
    missing = {f: _form_missing(raw_dir, f) for f in OMNIGLOT_RAW_FORMS}
    complete = [f for f in OMNIGLOT_RAW_FORMS if not missing[f]]
    if form is not None:
        if missing[form]:
            raise SourceConversionError(
                f"{raw_dir}: Omniglot {_FORM_TITLES[form]} requested, but "
                f"{', '.join(os.path.join(raw_dir, m) for m in missing[form])} not found")
        return OmniglotRawForm(raw_dir, form, [f for f in complete if f != form])
    if not complete:
        looked = "; or ".join(
            f"{_FORM_TITLES[f]} {', '.join(_FORM_MEMBERS[f])}" for f in OMNIGLOT_RAW_FORMS)
        partial = [f"{_FORM_TITLES[f]}: {', '.join(os.path.join(raw_dir, m) for m in missing[f])} "
                   "not found" for f in OMNIGLOT_RAW_FORMS
                   if len(missing[f]) < len(_FORM_MEMBERS[f])]
        raise SourceConversionError(
            f"{raw_dir}: no Omniglot data found; looked for {looked}"
            + (" (incomplete " + "; ".join(partial) + ")" if partial else ""))
    return OmniglotRawForm(raw_dir, complete[0], complete[1:])


# ------------------------------------------------------------------ original folders / zips


class _FolderTree:
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


class _ZipTree:
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


def _subfolders(tree, parts, what):
    """Sorted names of the sub-folders of ``parts``; any file there is an error."""
    return _sorted_entries(tree, parts, True, f"a file where only {what} folders are expected",
                           f"no {what} folders in it")


def _character_images(tree, parts):
    """Sorted file names of a character folder (the official converter's image order)."""
    return _sorted_entries(tree, parts, False,
                           "a folder inside a character folder (only image files are expected)",
                           "character folder with no images")


def _jpeg_of_file(tree, parts):
    data = tree.read(parts)
    try:
        return writer.encode_jpeg(data, invert=True)
    except Exception as e:  # pylint: disable=broad-except  # Pillow raises many types
        raise SourceConversionError(
            f"{tree.where(parts)}: not an image Pillow can read "
            f"({type(e).__name__}: {e})") from e


# ------------------------------------------------------------------ packed arrays (npz)


def _read_omniglot_index(omniglot_dir):
    path = pathlib.Path(omniglot_dir) / OMNIGLOT_INDEX
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
        if entry["set"] not in OMNIGLOT_SETS:
            raise SourceConversionError(
                f"{path}: alphabets[{i}] ({name}): field 'set' is {entry['set']!r}, expected "
                f"one of {OMNIGLOT_SETS}")
        for field in ("npz_first_row", "num_characters"):
            if not isinstance(entry[field], int) or entry[field] < 0:
                raise SourceConversionError(
                    f"{path}: alphabets[{i}] ({name}): field {field!r} must be a "
                    f"non-negative integer, got {entry[field]!r}")
        if name in out:
            raise SourceConversionError(f"{path}: alphabet {name!r} is listed twice")
        out[name] = entry
    return path, out


def _ordered_alphabets(background, evaluation, where):
    """[(alphabet, split, set name)] in the official superclass order."""
    missing = [a for a in OMNIGLOT_VALID_ALPHABETS if a not in background]
    if missing:
        raise SourceConversionError(
            f"{where}: validation alphabet(s) {missing} are not images_background alphabets")
    if (len(background), len(evaluation)) != OMNIGLOT_NUM_ALPHABETS:
        warnings.warn(
            f"{where}: {len(background)} images_background and {len(evaluation)} "
            f"images_evaluation alphabets; the official release has "
            f"{OMNIGLOT_NUM_ALPHABETS[0]} and {OMNIGLOT_NUM_ALPHABETS[1]} (the official "
            "converter refuses other counts), so class ids will not match official records",
            UserWarning, stacklevel=3)
    train = [a for a in sorted(background) if a not in OMNIGLOT_VALID_ALPHABETS]
    return ([(a, "TRAIN", OMNIGLOT_SETS[0]) for a in train] +
            [(a, "VALID", OMNIGLOT_SETS[0]) for a in OMNIGLOT_VALID_ALPHABETS] +
            [(a, "TEST", OMNIGLOT_SETS[1]) for a in sorted(evaluation)])


def _npz_classes(omniglot_dir):
    path, index = _read_omniglot_index(omniglot_dir)
    background = [a for a, e in index.items() if e["set"] == "images_background"]
    evaluation = [a for a, e in index.items() if e["set"] == "images_evaluation"]
    classes = []
    for superclass_id, (alphabet, split, _) in enumerate(
            _ordered_alphabets(background, evaluation, path)):
        entry = index[alphabet]
        characters = sorted(f"character{k:02d}" for k in range(1, entry["num_characters"] + 1))
        for character in characters:
            number = int(character[len("character"):])
            classes.append(OmniglotClass(
                len(classes), f"{alphabet}-{character}", alphabet, superclass_id, split,
                entry["npz_file"], entry["npz_first_row"] + number - 1,
                set_name=entry["set"], character=character))
    return classes


def _npz_member_shape(npz_path, key):
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


def _iter_npz_rows(npz_path, key, rows):
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


# ------------------------------------------------------------------ any form


class _OpenedOmniglot:
    """Omniglot raw data opened in its detected form: the classes and their images."""

    def __init__(self, raw_dir, raw_form=None):
        self.form = omniglot_raw_form(raw_dir, raw_form)
        self.raw_dir = self.form.raw_dir
        self.trees = {}
        try:
            if self.form.form == "npz":
                self.classes = _npz_classes(self.raw_dir)
            else:
                for set_name in OMNIGLOT_SETS:
                    if self.form.form == "folders":
                        self.trees[set_name] = _FolderTree(self.raw_dir / set_name)
                    else:
                        self.trees[set_name] = _ZipTree(self.raw_dir / f"{set_name}.zip",
                                                        set_name)
                self.classes = self._tree_classes()
        except BaseException:
            self.close()
            raise

    def close(self):
        for tree in self.trees.values():
            tree.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _tree_classes(self):
        background, evaluation = (self.trees[s] for s in OMNIGLOT_SETS)
        ordered = _ordered_alphabets(_subfolders(background, (), "alphabet"),
                                     _subfolders(evaluation, (), "alphabet"),
                                     background.where())
        classes = []
        for superclass_id, (alphabet, split, set_name) in enumerate(ordered):
            tree = self.trees[set_name]
            for character in _subfolders(tree, (alphabet,), "character"):
                files = _character_images(tree, (alphabet, character))
                classes.append(OmniglotClass(
                    len(classes), f"{alphabet}-{character}", alphabet, superclass_id, split,
                    set_name=set_name, character=character, image_files=tuple(files)))
        return classes

    def images_per_class(self):
        """Number of images of every class, in class order (no image is decoded)."""
        if self.form.form != "npz":
            return [len(c.image_files) for c in self.classes]
        shapes = {}
        out = []
        for c in self.classes:
            npz = self.raw_dir / c.npz_file
            if c.npz_file not in shapes:
                if not npz.is_file():
                    raise SourceConversionError(
                        f"{npz}: npz file named by {OMNIGLOT_INDEX} not found")
                shape = _npz_member_shape(npz, "images")
                if len(shape) != 4:
                    raise SourceConversionError(
                        f"{npz}: field 'images' has shape {shape}, expected "
                        "[chars, drawers, H, W]")
                shapes[c.npz_file] = shape
            shape = shapes[c.npz_file]
            if not 0 <= c.npz_row < shape[0]:
                raise SourceConversionError(
                    f"{npz}: class {c.class_id} ({c.name}) needs row {c.npz_row}, but field "
                    f"'images' has {shape[0]} rows")
            out.append(shape[1])
        return out

    def encoded_classes(self, subset):
        """Yields (class, iterable of JPEG bytes) for the classes of ``subset``."""
        if self.form.form == "npz":
            # Array order, so each npz member is streamed once.
            for npz_file in sorted({c.npz_file for c in subset}):
                in_file = {c.npz_row: c for c in subset if c.npz_file == npz_file}
                for row, drawings in _iter_npz_rows(self.raw_dir / npz_file, "images",
                                                    in_file):
                    yield in_file[row], (writer.encode_jpeg(d, invert=True) for d in drawings)
            return
        for c in subset:
            tree = self.trees[c.set_name]
            yield c, (_jpeg_of_file(tree, (c.alphabet, c.character, f))
                      for f in c.image_files)


def omniglot_classes(omniglot_dir, raw_form=None):
    """Returns the list of :class:`OmniglotClass` (all 1623) in Meta-Dataset class order.

    ``omniglot_dir`` holds any raw form (see :func:`omniglot_raw_form`); ``raw_form`` forces one.
    """
    with _OpenedOmniglot(omniglot_dir, raw_form) as raw:
        return raw.classes


def _dataset_spec(raw, records_root, name):
    classes = raw.classes
    images_per_class = raw.images_per_class()
    supers = []
    for c in classes:
        if not supers or supers[-1][0] != c.superclass_id:
            supers.append([c.superclass_id, c.alphabet, c.split, 0])
        supers[-1][3] += 1
    return writer.make_bilevel_dataset_spec(
        name, os.path.join(str(records_root), name),
        [s[1] for s in supers],
        [sum(1 for s in supers if s[2] == split) for split in writer.SPLIT_NAMES],
        [s[3] for s in supers],
        [c.name for c in classes],
        images_per_class)


def omniglot_dataset_spec(omniglot_dir, records_root=".", name=OMNIGLOT_NAME, raw_form=None):
    """The full Omniglot ``BiLevelDatasetSpecification`` dict, without decoding any image.

    ``path`` is ``os.path.join(records_root, name)`` as the official converter writes it.
    """
    with _OpenedOmniglot(omniglot_dir, raw_form) as raw:
        return _dataset_spec(raw, records_root, name)


def _select(classes, class_ids, alphabets):
    if class_ids is None and alphabets is None:
        return classes, True
    chosen = set()
    if class_ids is not None:
        for i in class_ids:
            if not 0 <= int(i) < len(classes):
                raise SourceConversionError(
                    f"Omniglot class id {i} out of range [0, {len(classes)})")
            chosen.add(int(i))
    if alphabets is not None:
        known = {c.alphabet for c in classes}
        for a in alphabets:
            if a not in known:
                raise SourceConversionError(f"unknown Omniglot alphabet {a!r}")
        chosen |= {c.class_id for c in classes if c.alphabet in set(alphabets)}
    subset = [c for c in classes if c.class_id in chosen]
    return subset, len(subset) == len(classes)


def convert_omniglot(omniglot_dir, records_root, classes=None, alphabets=None,
                     overwrite=False, name=OMNIGLOT_NAME, write_spec=None, spec_path=None,
                     raw_form=None):
    """Converts Omniglot to ``<records_root>/omniglot/`` exactly as the official converter.

    Args:
      omniglot_dir: folder with Omniglot in one of the raw forms of
        :func:`omniglot_raw_form`: ``images_background/`` + ``images_evaluation/`` (unzipped
        original), ``images_background.zip`` + ``images_evaluation.zip`` (original downloads,
        read in place), or ``images_background.npz`` + ``images_evaluation.npz`` +
        ``omniglot_index.json`` (packed arrays).
      records_root: folder receiving ``omniglot/``.
      classes: optional absolute class ids to convert (a slice, e.g. for tests).
      alphabets: optional alphabet names to convert (a slice); combined with ``classes``.
      overwrite: replace a non-empty existing ``omniglot/`` folder.
      name: folder / spec name.
      write_spec: write ``dataset_spec.json`` (default: only for a full conversion, since a
        slice keeps the official class ids and so is not a complete source on its own).
      spec_path: value of the spec's ``path`` field (default ``records_root/name``).
      raw_form: force one of :data:`OMNIGLOT_RAW_FORMS` instead of detecting it.

    Returns:
      A :class:`ctx_tf.data.writer.WriteReport`; for a slice its counts cover the written
      classes only, while ``.spec`` is the full spec. Only the images of the converted
      classes are decoded.
    """
    with _OpenedOmniglot(omniglot_dir, raw_form) as raw:
        all_classes = raw.classes
        spec = _dataset_spec(raw, records_root, name)
        if spec_path is not None:
            spec["path"] = str(spec_path)
        subset, complete = _select(all_classes, classes, alphabets)
        if write_spec is None:
            write_spec = complete
        out = writer._prepare_output_dir(records_root, name, overwrite)  # pylint: disable=protected-access
        counts = {s: 0 for s in writer.SPLIT_NAMES}
        images = {s: 0 for s in writer.SPLIT_NAMES}
        for c, jpegs in raw.encoded_classes(subset):
            records = (writer.encode_example(jpeg, c.class_id) for jpeg in jpegs)
            path = out / writer.FILE_PATTERN.format(c.class_id)
            n = writer._write_tfrecord(path, records)  # pylint: disable=protected-access
            counts[c.split] += 1
            images[c.split] += n
    if write_spec:
        writer._write_text(out / writer.SPEC_FILENAME, writer.spec_to_json(spec))  # pylint: disable=protected-access
    if complete:
        # Record files of an earlier, different conversion (overwrite=True) must go.
        writer._remove_stale_records(out, len(all_classes))  # pylint: disable=protected-access
    supers = None
    if complete:
        supers = dict(spec["superclasses_per_split"])
    return writer.WriteReport(str(out), name, counts, images, supers, spec)


KNOWN_SOURCES = {"omniglot": convert_omniglot}
# For each known source: describes the raw data found in --raw_dir (printed by the command).
RAW_DESCRIBERS = {"omniglot": lambda raw_dir: omniglot_raw_form(raw_dir).describe()}


def run_cli(flag_values) -> int:
    """Runs the command line with parsed absl ``flag_values`` (see :func:`define_flags`)."""
    f = flag_values
    if f.source not in KNOWN_SOURCES:
        raise SystemExit(f"--source must be one of {sorted(KNOWN_SOURCES)}, got {f.source!r}")
    if not f.raw_dir or not f.records_root:
        raise SystemExit("--raw_dir and --records_root are required")
    alphabets = [a for a in f.alphabets.split(",") if a] if f.alphabets else None
    try:
        print(f"reading {RAW_DESCRIBERS[f.source](f.raw_dir)}", flush=True)
        report = KNOWN_SOURCES[f.source](f.raw_dir, f.records_root, alphabets=alphabets,
                                         overwrite=f.overwrite)
    except SourceConversionError as e:  # bad raw data: the message names the path at fault
        raise SystemExit(f"error: {e}") from e
    print(report.summary())
    return 0


def define_flags(flag_values=None):
    """Defines the command-line flags on ``flag_values`` (default: the global absl FLAGS)."""
    from absl import flags  # pylint: disable=g-import-not-at-top

    fv = flags.FLAGS if flag_values is None else flag_values
    flags.DEFINE_string("source", "omniglot", "Known source to convert: omniglot.",
                        flag_values=fv)
    flags.DEFINE_string(
        "raw_dir", None,
        "Folder with the raw data of the source. Omniglot: the unzipped original folders "
        "images_background/ and images_evaluation/, or the original downloads "
        "images_background.zip and images_evaluation.zip (read in place), or the packed "
        "images_background.npz, images_evaluation.npz and omniglot_index.json; detected "
        "automatically, preferring folders, then zips, then npz when several are present.",
        flag_values=fv)
    flags.DEFINE_string("records_root", None, "Folder receiving the <source>/ folder.",
                        flag_values=fv)
    flags.DEFINE_string("alphabets", None, "Omniglot: comma-separated alphabets to convert "
                        "(a slice with the official class ids; no dataset_spec.json).",
                        flag_values=fv)
    flags.DEFINE_bool("overwrite", False, "Replace an existing non-empty source folder.",
                      flag_values=fv)
    return fv


def _main(argv):
    from absl import flags  # pylint: disable=g-import-not-at-top

    if len(argv) > 1:
        raise SystemExit(f"unexpected arguments: {argv[1:]}")
    return run_cli(flags.FLAGS)


if __name__ == "__main__":
    from absl import app  # pylint: disable=g-import-not-at-top

    define_flags()
    app.run(_main)
