"""Converters for known datasets into Meta-Dataset's record format.

Omniglot
--------
:func:`convert_omniglot` reads the Omniglot character arrays ``images_background.npz`` and
``images_evaluation.npz`` (bool ``images[n_chars, 20, 105, 105]``, True = white paper) and the
index ``omniglot_index.json`` (alphabet name -> npz file and first row; character ``NN`` of an
alphabet is row ``npz_first_row + NN - 1``, drawer ``d`` is column ``d - 1``), and writes the
layout of the official converter:

* alphabets are superclasses; TRAIN = the ``images_background`` alphabets other than the five
  validation alphabets, sorted; VALID = :data:`OMNIGLOT_VALID_ALPHABETS` in that fixed order;
  TEST = the ``images_evaluation`` alphabets, sorted;
* classes (characters) are numbered alphabet by alphabet in that order, ``characterNN`` sorted
  inside an alphabet, named ``"<alphabet>-characterNN"``; images in drawer order 01..20;
* every image goes 1-bit -> RGB -> colour inversion (white strokes on black) -> JPEG with
  Pillow's defaults (quality 75), as the official converter does with ``invert_img=True``.

The class order is derived from these rules, not read from the index.

Command line::

  python -m ctx_tf.data.sources --source=omniglot --raw_dir=DIR --records_root=DIR \
      [--alphabets=Latin,Greek] [--overwrite]
"""

import json
import os
import pathlib
import zipfile

import numpy as np

from ctx_tf.data import writer

OMNIGLOT_NAME = "omniglot"
OMNIGLOT_INDEX = "omniglot_index.json"
OMNIGLOT_SETS = ("images_background", "images_evaluation")
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
    """One Omniglot character in Meta-Dataset order."""

    __slots__ = ("class_id", "name", "alphabet", "superclass_id", "split", "npz_file",
                 "npz_row")

    def __init__(self, class_id, name, alphabet, superclass_id, split, npz_file, npz_row):
        self.class_id = class_id
        self.name = name
        self.alphabet = alphabet
        self.superclass_id = superclass_id
        self.split = split
        self.npz_file = npz_file
        self.npz_row = npz_row

    def __repr__(self):
        return (f"OmniglotClass({self.class_id}, {self.name!r}, {self.split}, "
                f"{self.npz_file}[{self.npz_row}])")


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


def omniglot_classes(omniglot_dir):
    """Returns the list of :class:`OmniglotClass` (all 1623) in Meta-Dataset class order."""
    path, index = _read_omniglot_index(omniglot_dir)
    background = sorted(a for a, e in index.items() if e["set"] == "images_background")
    evaluation = sorted(a for a, e in index.items() if e["set"] == "images_evaluation")
    missing = [a for a in OMNIGLOT_VALID_ALPHABETS if a not in background]
    if missing:
        raise SourceConversionError(
            f"{path}: validation alphabet(s) {missing} are not images_background alphabets")
    train = [a for a in background if a not in OMNIGLOT_VALID_ALPHABETS]
    ordered = ([(a, "TRAIN") for a in train] +
               [(a, "VALID") for a in OMNIGLOT_VALID_ALPHABETS] +
               [(a, "TEST") for a in evaluation])
    classes = []
    for superclass_id, (alphabet, split) in enumerate(ordered):
        entry = index[alphabet]
        characters = sorted(f"character{k:02d}" for k in range(1, entry["num_characters"] + 1))
        for character in characters:
            number = int(character[len("character"):])
            classes.append(OmniglotClass(
                len(classes), f"{alphabet}-{character}", alphabet, superclass_id, split,
                entry["npz_file"], entry["npz_first_row"] + number - 1))
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


def omniglot_dataset_spec(omniglot_dir, records_root=".", name=OMNIGLOT_NAME):
    """The full Omniglot ``BiLevelDatasetSpecification`` dict, without reading any image.

    ``path`` is ``os.path.join(records_root, name)`` as the official converter writes it.
    """
    classes = omniglot_classes(omniglot_dir)
    images_per_file = {}
    for c in classes:
        if c.npz_file not in images_per_file:
            npz = pathlib.Path(omniglot_dir) / c.npz_file
            shape = _npz_member_shape(npz, "images")
            if len(shape) != 4:
                raise SourceConversionError(
                    f"{npz}: field 'images' has shape {shape}, expected [chars, drawers, H, W]")
            images_per_file[c.npz_file] = shape
        shape = images_per_file[c.npz_file]
        if not 0 <= c.npz_row < shape[0]:
            raise SourceConversionError(
                f"{pathlib.Path(omniglot_dir) / c.npz_file}: class {c.class_id} ({c.name}) "
                f"needs row {c.npz_row}, but field 'images' has {shape[0]} rows")
    supers = []
    for c in classes:
        if not supers or supers[-1][0] != c.alphabet:
            supers.append([c.alphabet, c.split, 0])
        supers[-1][2] += 1
    return writer.make_bilevel_dataset_spec(
        name, os.path.join(str(records_root), name),
        [s[0] for s in supers],
        [sum(1 for s in supers if s[1] == split) for split in writer.SPLIT_NAMES],
        [s[2] for s in supers],
        [c.name for c in classes],
        [images_per_file[c.npz_file][1] for c in classes])


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
                     overwrite=False, name=OMNIGLOT_NAME, write_spec=None, spec_path=None):
    """Converts Omniglot to ``<records_root>/omniglot/`` exactly as the official converter.

    Args:
      omniglot_dir: folder with ``images_background.npz``, ``images_evaluation.npz`` and
        ``omniglot_index.json``.
      records_root: folder receiving ``omniglot/``.
      classes: optional absolute class ids to convert (a slice, e.g. for tests).
      alphabets: optional alphabet names to convert (a slice); combined with ``classes``.
      overwrite: replace a non-empty existing ``omniglot/`` folder.
      name: folder / spec name.
      write_spec: write ``dataset_spec.json`` (default: only for a full conversion, since a
        slice keeps the official class ids and so is not a complete source on its own).
      spec_path: value of the spec's ``path`` field (default ``records_root/name``).

    Returns:
      A :class:`ctx_tf.data.writer.WriteReport`; for a slice its counts cover the written
      classes only, while ``.spec`` is the full spec.
    """
    omniglot_dir = pathlib.Path(omniglot_dir)
    all_classes = omniglot_classes(omniglot_dir)
    spec = omniglot_dataset_spec(omniglot_dir, records_root, name)
    if spec_path is not None:
        spec["path"] = str(spec_path)
    subset, complete = _select(all_classes, classes, alphabets)
    if write_spec is None:
        write_spec = complete
    out = writer._prepare_output_dir(records_root, name, overwrite)  # pylint: disable=protected-access
    counts = {s: 0 for s in writer.SPLIT_NAMES}
    images = {s: 0 for s in writer.SPLIT_NAMES}
    for npz_file in sorted({c.npz_file for c in subset}):
        in_file = {c.npz_row: c for c in subset if c.npz_file == npz_file}
        for row, drawings in _iter_npz_rows(omniglot_dir / npz_file, "images", in_file):
            c = in_file[row]
            records = (writer.encode_example(writer.encode_jpeg(d, invert=True), c.class_id)
                       for d in drawings)
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


def run_cli(flag_values) -> int:
    """Runs the command line with parsed absl ``flag_values`` (see :func:`define_flags`)."""
    f = flag_values
    if f.source not in KNOWN_SOURCES:
        raise SystemExit(f"--source must be one of {sorted(KNOWN_SOURCES)}, got {f.source!r}")
    if not f.raw_dir or not f.records_root:
        raise SystemExit("--raw_dir and --records_root are required")
    alphabets = [a for a in f.alphabets.split(",") if a] if f.alphabets else None
    report = KNOWN_SOURCES[f.source](f.raw_dir, f.records_root, alphabets=alphabets,
                                     overwrite=f.overwrite)
    print(report.summary())
    return 0


def define_flags(flag_values=None):
    """Defines the command-line flags on ``flag_values`` (default: the global absl FLAGS)."""
    from absl import flags  # pylint: disable=g-import-not-at-top

    fv = flags.FLAGS if flag_values is None else flag_values
    flags.DEFINE_string("source", "omniglot", "Known source to convert: omniglot.",
                        flag_values=fv)
    flags.DEFINE_string("raw_dir", None, "Folder with the raw data of the source.",
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
