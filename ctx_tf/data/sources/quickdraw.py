"""QuickDraw (the numpy_bitmap release): 345 classes of 28x28 drawings, one `.npy` per class.

Official rules (QuickdrawConverter): the class names are the file names up to their first dot,
sorted; 70% / 15% / 15% of them (int(0.7 n), int(0.85 n) - int(0.7 n), the rest) go to train
/ valid / test by the seeded draw; a class's records are the rows of `<class name>.npy`
(`[N, 784]` uint8, bool scaled to 0/255) in row order. Only `.npy` headers are read here: the
~50 M drawings are listed lazily, row by row, in the worker that writes the class.
"""

import functools
import os

import numpy as np

from ctx_tf.data.sources import common
from ctx_tf.data.writing.plan import ClassPlan, ImageRef

NAME = "quickdraw"
RAW_EXPECTS = ("--raw_dir: the folder of the per-class numpy bitmaps; reads "
               "<class name>.npy ([N, 784] uint8 arrays)")


def class_names(raw_dir):
    """The class names of the .npy files of `raw_dir`, sorted; returns `(names, skipped)`."""
    common.require(raw_dir, "one <class name>.npy file per class")
    names, skipped = [], []
    for filename in sorted(os.listdir(raw_dir)):
        path = os.path.join(raw_dir, filename)
        if filename.endswith(".npy") and not os.path.isdir(path):
            names.append(filename[:filename.find(".")])
        else:
            skipped.append((path, "not a <class name>.npy file"))
    return sorted(names), skipped


def split_classes(names):
    """The official 70 / 15 / 15 split of the sorted class names."""
    num_classes = len(names)
    num_train = int(0.7 * num_classes)
    num_valid = int(0.85 * num_classes) - num_train
    return common.seeded_class_split(sorted(names), num_train, num_valid,
                                     num_classes - num_train - num_valid)


def num_rows(path):
    """The number of drawings in a class's .npy file, from its header (no data is read)."""
    shape = np.load(path, mmap_mode="r").shape
    if len(shape) != 2:
        raise ValueError(f"{path}: expected an [N, side * side] array of drawings, "
                         f"got shape {shape}")
    return shape[0]


def _rows(path, count):
    for row in range(count):
        yield ImageRef(path, row=row)


def plan(raw_dir, name=NAME):
    """The official QuickDraw classes and splits of `raw_dir`, one record per .npy row."""
    names, skipped = class_names(raw_dir)
    splits = split_classes(names)
    classes = []
    for class_name in common.classes_in_id_order(splits):
        path = common.require(os.path.join(raw_dir, f"{class_name}.npy"),
                              f"the drawings of class {class_name!r}")
        count = num_rows(path)
        classes.append(ClassPlan(class_name, functools.partial(_rows, path, count), count))
    return common.flat_plan(name, splits, classes, skipped)
