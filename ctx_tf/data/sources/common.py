"""What every source converter shares: its errors (defined in `errors`), the checks of expected
raw files, the official seeded class split and the official folder listing.

The official converter creates a split by reseeding NumPy's global generator with the
converter's `random_seed` (22 unless changed) and drawing class indices; here the same draws
come from a private `RandomState`, so planning never disturbs the caller's global generator.
"""

import functools
import os

import numpy as np

from ctx_tf.data.dataset_spec import SPLIT_NAMES
from ctx_tf.data.writing.errors import MissingRawFileError, SourceConversionError
from ctx_tf.data.writing.plan import ClassPlan, ImageRef, SourcePlan


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


# DatasetConverter's default `random_seed`.
OFFICIAL_SEED = 22
# The keys of the official split files: "train", "valid", "test".
SPLIT_KEYS = tuple(name.lower() for name in SPLIT_NAMES)


def seeded_class_split(class_names, num_train, num_valid, num_test, seed=OFFICIAL_SEED):
    """Splits `class_names` as the official `gen_rand_split_inds` does after seeding with `seed`.

    Returns {"train": [...], "valid": [...], "test": [...]}: train in the drawn (random) order,
    valid and test in index order, exactly like the official split files.
    """
    num_classes = num_train + num_valid + num_test
    if len(class_names) != num_classes:
        raise ValueError(f"the official split needs {num_classes} classes "
                         f"({num_train} / {num_valid} / {num_test}), got {len(class_names)}")
    rng = np.random.RandomState(seed)
    trainval = rng.choice(num_classes, num_train + num_valid, replace=False)
    test = np.setdiff1d(np.arange(num_classes), trainval)
    train = rng.choice(trainval, num_train, replace=False)
    valid = np.setdiff1d(trainval, train)
    return {split: [class_names[i] for i in inds]
            for split, inds in zip(SPLIT_KEYS, (train, valid, test))}


def classes_in_id_order(splits):
    """The class names of a split dict in class-id order: TRAIN, then VALID, then TEST."""
    return [name for split in SPLIT_KEYS for name in splits[split]]


def flat_plan(name, splits, classes, skipped=()):
    """A flat `SourcePlan` whose `classes` follow `classes_in_id_order(splits)`."""
    return SourcePlan(
        name=name,
        classes=tuple(classes),
        classes_per_split={name: len(splits[key]) for name, key in zip(SPLIT_NAMES, SPLIT_KEYS)},
        skipped=tuple(skipped))


def require(path, holds):
    """Raises a one-line MissingRawFileError (a FileNotFoundError) when `path` is absent; returns `path`."""
    if not os.path.exists(path):
        raise MissingRawFileError(f"{path} is missing: it should hold {holds}")
    return path


def select_class_files(entries, files_to_skip, where):
    """The files of a class folder as `write_tfrecord_from_directory` takes them.

    entries: {name: is_folder} of the folder (on disk or inside an archive); where(name): how
    the skipped entries are named. Returns the kept names sorted, and `(where(name), reason)`
    of the `files_to_skip` names and subfolders left out.
    """
    names, skipped = [], []
    for name in sorted(entries):
        if name in files_to_skip:
            skipped.append((where(name), "not an image; the official converter skips it"))
        elif entries[name]:
            skipped.append((where(name), "a folder inside a class folder; the official "
                                         "converter skips it"))
        else:
            names.append(name)
    return names, skipped


def list_class_folder(directory, files_to_skip=()):
    """`select_class_files` of a folder on disk: `(paths, skipped)`, both named by path."""
    require(directory, "the images of one class")
    with os.scandir(directory) as it:
        entries = {e.name: e.is_dir() for e in it}
    names, skipped = select_class_files(entries, files_to_skip,
                                        lambda name: os.path.join(directory, name))
    return [os.path.join(directory, name) for name in names], skipped


def _refs(paths, crops, archive):
    for i, path in enumerate(paths):
        crop = None if crops is None else crops[i]
        yield (ImageRef(path, crop=crop) if archive is None
               else ImageRef(archive, crop=crop, member=path))


def files_class(name, paths, crops=None, archive=None):
    """A `ClassPlan` of image files in write order, with optional PIL crop boxes; with
    `archive` (a zip file), `paths` are its member names, read in place."""
    paths = tuple(paths)
    crops = None if crops is None else tuple(tuple(box) for box in crops)
    return ClassPlan(name=name, images=functools.partial(_refs, paths, crops, archive),
                     num_images=len(paths))
