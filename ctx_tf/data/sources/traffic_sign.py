"""Traffic Sign (GTSRB training set): 43 classes, all of them TEST classes.

Official rules (TrafficSignConverter): class `i` is named "<ii>.<label name>" with the label
names of the benchmark's TrafficSign_labels.txt; its images are the files of
`Final_Training/Images/<iiiii>/` sorted by name, without the `GT-<iiiii>.csv` annotation file
and subfolders, then shuffled by a fresh `RandomState(seed + 1)` per class, because the
release orders them as 30-frame tracks of the same physical sign.
"""

import os

import numpy as np

from ctx_tf.data import facts
from ctx_tf.data.sources import common

NAME = "traffic_sign"
RAW_EXPECTS = ("--raw_dir: the GTSRB folder; reads the image files of "
               "Final_Training/Images/<00000..00042>/")
NUM_CLASSES = 43
SHUFFLE_SEED = common.OFFICIAL_SEED + 1


def split_classes(label_names):
    """The official split: every class is TEST, named "<ii>.<label name>"."""
    if len(label_names) != NUM_CLASSES:
        raise ValueError(f"traffic_sign needs {NUM_CLASSES} label names, got {len(label_names)}")
    return {"train": [], "valid": [],
            "test": [f"{i:02d}.{n}" for i, n in enumerate(label_names)]}


def class_images(raw_dir, class_id):
    """The image paths of class `class_id` in the official write order, and the skipped files."""
    folder = os.path.join(raw_dir, "Final_Training", "Images", f"{class_id:05d}")
    paths, skipped = common.list_class_folder(folder, {f"GT-{class_id:05d}.csv"})
    np.random.RandomState(SHUFFLE_SEED).shuffle(paths)
    return paths, skipped


def plan(raw_dir, name=NAME):
    """The official Traffic Sign classes and shuffled image files of `raw_dir`."""
    splits = split_classes(facts.labels(NAME))
    classes, skipped = [], []
    for class_id, class_name in enumerate(common.classes_in_id_order(splits)):
        paths, left_out = class_images(raw_dir, class_id)
        classes.append(common.files_class(class_name, paths))
        skipped.extend(left_out)
    return common.flat_plan(name, splits, classes, skipped)
