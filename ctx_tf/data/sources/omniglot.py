"""Omniglot: the plan of the official converter's layout, from any of three raw forms.

The raw forms (original folders, original zips read in place, packed npz arrays; see
`omniglot_raw`) are detected in `raw_dir`; when several are complete the first of
`omniglot_raw.RAW_FORMS` (folders, zip, npz) is used and the others are reported as ignored.
Every form gives the layout of the official `OmniglotConverter`, byte for byte for the same
images:

* alphabets are superclasses; TRAIN = the `images_background` alphabets other than the five
  validation alphabets, sorted; VALID = `VALID_ALPHABETS` in that fixed order; TEST = the
  `images_evaluation` alphabets, sorted;
* classes (characters) are numbered alphabet by alphabet in that order, character folders
  sorted by name inside an alphabet, named `"<alphabet>-<character folder>"`; the images of
  a class are its files sorted by name (drawer order 01..20 for the original names);
* every image is converted to RGB, colour-inverted (white strokes on black) and saved as a
  JPEG with Pillow's defaults; the spec counts the images written.

Names are sorted as Python strings, like the official converter. Unlike it, the folder forms
reject, naming the path, what it would crash on or silently count: a file where an alphabet
or character folder is expected, an alphabet without character folders, a character folder
that is empty or holds a folder; a file that is no image is named and skipped by the engine
(or refused with `--strict`). The number of alphabets (30 + 20 in the release) is not
enforced. For the npz form the class order is derived from these rules, not read from the
index.

Command line::

  python -m ctx_tf.data.sources --source=omniglot --raw_dir=DIR --records_root=DIR \
      [--alphabets=Latin,Greek] [--overwrite]
"""

import dataclasses
import functools
import os
import warnings

import numpy as np

from ctx_tf.data.dataset_spec import SPLIT_NAMES
from ctx_tf.data.sources import omniglot_raw
from ctx_tf.data.sources.omniglot_raw import SETS
from ctx_tf.data.writing import engine, image_encoding
from ctx_tf.data.writing.errors import SourceConversionError
from ctx_tf.data.writing.plan import ClassPlan, ImageRef, SourcePlan
from ctx_tf.data.writing.plan_spec import make_spec

NAME = "omniglot"
RAW_EXPECTS = (
    "the Omniglot download: the unzipped folders images_background/ and images_evaluation/, "
    "or the zips images_background.zip and images_evaluation.zip (read in place), or "
    "images_background.npz, images_evaluation.npz and omniglot_index.json")
# Alphabets per set in the original release (the official converter asserts these counts).
NUM_ALPHABETS = (30, 20)
# The validation alphabets, in the order the official converter numbers them.
VALID_ALPHABETS = (
    "Blackfoot_(Canadian_Aboriginal_Syllabics)",
    "Ojibwe_(Canadian_Aboriginal_Syllabics)",
    "Inuktitut_(Canadian_Aboriginal_Syllabics)",
    "Tagalog",
    "Alphabet_of_the_Magi",
)


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


def _ordered_alphabets(background, evaluation, where):
    """[(alphabet, split, set name)] in the official superclass order."""
    missing = [a for a in VALID_ALPHABETS if a not in background]
    if missing:
        raise SourceConversionError(
            f"{where}: validation alphabet(s) {missing} are not images_background alphabets")
    if (len(background), len(evaluation)) != NUM_ALPHABETS:
        warnings.warn(
            f"{where}: {len(background)} images_background and {len(evaluation)} "
            f"images_evaluation alphabets; the official release has "
            f"{NUM_ALPHABETS[0]} and {NUM_ALPHABETS[1]} (the official "
            "converter refuses other counts), so class ids will not match official records",
            UserWarning, stacklevel=3)
    train = [a for a in sorted(background) if a not in VALID_ALPHABETS]
    return ([(a, "TRAIN", SETS[0]) for a in train] +
            [(a, "VALID", SETS[0]) for a in VALID_ALPHABETS] +
            [(a, "TEST", SETS[1]) for a in sorted(evaluation)])


def _npz_classes(omniglot_dir):
    path, index = omniglot_raw.read_index(omniglot_dir)
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


# ------------------------------------------------------------------ the classes of each form


def _tree_classes(trees):
    background, evaluation = (trees[s] for s in SETS)
    ordered = _ordered_alphabets(omniglot_raw.subfolders(background, (), "alphabet"),
                                 omniglot_raw.subfolders(evaluation, (), "alphabet"),
                                 background.where())
    classes = []
    for superclass_id, (alphabet, split, set_name) in enumerate(ordered):
        tree = trees[set_name]
        for character in omniglot_raw.subfolders(tree, (alphabet,), "character"):
            files = omniglot_raw.character_images(tree, (alphabet, character))
            classes.append(OmniglotClass(
                len(classes), f"{alphabet}-{character}", alphabet, superclass_id, split,
                set_name=set_name, character=character, image_files=tuple(files)))
    return classes


def _npz_sizes(raw_dir, classes):
    """Images of every class, from the npz headers (no array is inflated)."""
    shapes, out = {}, []
    for c in classes:
        npz = raw_dir / c.npz_file
        if c.npz_file not in shapes:
            if not npz.is_file():
                raise SourceConversionError(
                    f"{npz}: npz file named by {omniglot_raw.INDEX_FILENAME} not found")
            shape = omniglot_raw.npz_member_shape(npz, "images")
            if len(shape) != 4:
                raise SourceConversionError(
                    f"{npz}: field 'images' has shape {shape}, expected [chars, drawers, H, W]")
            shapes[c.npz_file] = shape
        shape = shapes[c.npz_file]
        if not 0 <= c.npz_row < shape[0]:
            raise SourceConversionError(
                f"{npz}: class {c.class_id} ({c.name}) needs row {c.npz_row}, but field "
                f"'images' has {shape[0]} rows")
        out.append(shape[1])
    return out


# ------------------------------------------------------------------ images (picklable)


@dataclasses.dataclass(frozen=True)
class ArrayImage:
    """One drawing of the packed arrays (True = white paper)."""

    where: str
    drawing: np.ndarray

    def encode(self):
        return image_encoding.encode_jpeg(self.drawing, invert=True)


def _npz_images(npz_path, row):
    for drawer, drawing in enumerate(omniglot_raw.npz_row(npz_path, row)):
        yield ArrayImage(f"{npz_path}[row {row}, drawer {drawer + 1}]", drawing)


def _class_images(form, raw_dir, trees, c):
    """The picklable `ClassPlan.images` of one class."""
    if form == "npz":
        return functools.partial(_npz_images, str(raw_dir / c.npz_file), c.npz_row)
    tree = trees[c.set_name]
    parts = [(c.alphabet, c.character, f) for f in c.image_files]
    if form == "folders":
        images = tuple(ImageRef(tree.where(p), invert=True) for p in parts)
    else:  # the PNG read in place from its zip file
        images = tuple(ImageRef(str(tree.zip_path), invert=True, member=tree.member(p))
                       for p in parts)
    return functools.partial(iter, images)


# ------------------------------------------------------------------ the plan


def read_classes(raw_dir, raw_form=None):
    """(the detected `omniglot_raw.RawForm`, [OmniglotClass] in official order, the
    `ClassPlan` of each class)."""
    form = omniglot_raw.detect_raw_form(raw_dir, raw_form)
    raw_dir = form.raw_dir
    if form.form == "npz":
        classes = _npz_classes(raw_dir)
        sizes = _npz_sizes(raw_dir, classes)
        return form, classes, [ClassPlan(c.name, _class_images("npz", raw_dir, None, c), n)
                               for c, n in zip(classes, sizes)]
    trees = {}
    try:
        for set_name in SETS:
            trees[set_name] = (omniglot_raw.FolderTree(raw_dir / set_name)
                               if form.form == "folders" else
                               omniglot_raw.ZipTree(raw_dir / f"{set_name}.zip", set_name))
        classes = _tree_classes(trees)
        return form, classes, [
            ClassPlan(c.name, _class_images(form.form, raw_dir, trees, c), len(c.image_files))
            for c in classes]
    finally:
        for tree in trees.values():
            tree.close()


def _plan_of(classes, class_plans):
    supers = []  # [alphabet, split, number of characters]
    for c in classes:
        if not supers or supers[-1][0] != c.alphabet:
            supers.append([c.alphabet, c.split, 0])
        supers[-1][2] += 1
    return SourcePlan(
        NAME, tuple(class_plans),
        {s: sum(1 for c in classes if c.split == s) for s in SPLIT_NAMES},
        spec_type="bilevel",
        spec_fields={
            "superclass_names": [s[0] for s in supers],
            "superclasses_per_split": {
                split: sum(1 for s in supers if s[1] == split) for split in SPLIT_NAMES},
            "classes_per_superclass": [s[2] for s in supers]})


def plan(raw_dir, raw_form=None) -> SourcePlan:
    """The Omniglot `SourcePlan` of `raw_dir` (any raw form; `raw_form` forces one)."""
    _, classes, class_plans = read_classes(raw_dir, raw_form)
    return _plan_of(classes, class_plans)


def list_classes(raw_dir, raw_form=None):
    """All [OmniglotClass] (1623 in the release) in Meta-Dataset class order."""
    return read_classes(raw_dir, raw_form)[1]


def dataset_spec(raw_dir, records_root=".", raw_form=None):
    """The full `BiLevelDatasetSpecification` dict, counting files (no image is decoded).

    `path` is `os.path.join(records_root, "omniglot")`, as the official converter writes it.
    """
    source = plan(raw_dir, raw_form)
    return make_spec(source, [c.num_images for c in source.classes],
                            os.path.join(str(records_root), NAME))


def select_class_ids(classes, class_ids=None, alphabets=None):
    """The ids of the given classes and of every class of the given alphabets."""
    chosen = set()
    for i in class_ids or ():
        if not 0 <= int(i) < len(classes):
            raise SourceConversionError(
                f"Omniglot class id {i} out of range [0, {len(classes)})")
        chosen.add(int(i))
    known = {c.alphabet for c in classes}
    for a in alphabets or ():
        if a not in known:
            raise SourceConversionError(f"unknown Omniglot alphabet {a!r}")
    chosen |= {c.class_id for c in classes if c.alphabet in set(alphabets or ())}
    return sorted(chosen)


def convert(raw_dir, records_root, classes=None, alphabets=None, raw_form=None, **kwargs):
    """Converts Omniglot to `<records_root>/omniglot/` exactly as the official converter.

    `classes` (ids) and `alphabets` (names) convert a slice keeping the official ids, with
    no `dataset_spec.json`; `kwargs` go to `engine.convert` (workers, strict, overwrite,
    spec_path, log). Returns the `engine.ConversionReport`.
    """
    _, listed, class_plans = read_classes(raw_dir, raw_form)
    ids = None
    if classes is not None or alphabets is not None:
        ids = select_class_ids(listed, classes, alphabets)
    return engine.convert(_plan_of(listed, class_plans), records_root, class_ids=ids, **kwargs)


def describe_raw(raw_dir):
    """One line naming the raw form found in `raw_dir` (and complete forms ignored)."""
    return omniglot_raw.detect_raw_form(raw_dir).describe()
