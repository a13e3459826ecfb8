"""CUB-200-2011: 200 bird species, split 140 / 30 / 30 by the official seeded draw.

Official rules (CUBirdsConverter): the class names are the second field of each
`classes.txt` line (`<id> <name>`), in file order; a class's images are the files of
`images/<name>/` sorted by name (subfolders left out), uncropped.
"""

import os

from ctx_tf.data.sources import common

NAME = "cu_birds"
RAW_EXPECTS = ("--raw_dir: the CUB_200_2011 folder; reads classes.txt and the files of "
               "images/<class name>/")
NUM_TRAIN, NUM_VALID, NUM_TEST = 140, 30, 30


def class_names(raw_dir):
    """The class names of classes.txt, in file order."""
    path = common.require(os.path.join(raw_dir, "classes.txt"),
                          "one '<id> <class name>' line per class")
    names = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            fields = line.strip().split(" ")
            if len(fields) != 2:
                raise ValueError(f"{path}: expected '<id> <class name>', got {line.strip()!r}")
            names.append(fields[1])
    return names


def split_classes(names):
    """The official split of the class names (in classes.txt order)."""
    return common.seeded_class_split(names, NUM_TRAIN, NUM_VALID, NUM_TEST)


def plan(raw_dir, name=NAME):
    """The official CUB classes, splits and image files of `raw_dir`."""
    splits = split_classes(class_names(raw_dir))
    classes, skipped = [], []
    for class_name in common.classes_in_id_order(splits):
        paths, left_out = common.list_class_folder(os.path.join(raw_dir, "images", class_name))
        classes.append(common.files_class(class_name, paths))
        skipped.extend(left_out)
    return common.flat_plan(name, splits, classes, skipped)
