"""Fungi (FGVCx 2018 fungi challenge): 1394 species from the train and val annotations.

Official rules (FungiConverter): the categories of `train.json` (equal to those of `val.json`),
sorted by id, which must run 0..n-1, are named `"{id:04d}.{name}"` (several species share a
name); these labels are split 994 / 200 / 200 by the seeded draw. A class's images are the
`images` entries of train.json then val.json whose annotation names its category, in that
order, read from `<raw_dir>/<file_name>`; none is cropped or skipped.
"""

import collections
import json
import operator
import os

from ctx_tf.data.sources import common

NAME = "fungi"
RAW_EXPECTS = ("--raw_dir: the folder holding the FGVCx fungi download untarred (train_val "
               "annotations and images); reads train.json, val.json and the images/ files "
               "they name")
NUM_TRAIN, NUM_VALID, NUM_TEST = 994, 200, 200
_PARTS = ("train", "val")


def _annotations(raw_dir):
    loaded = []
    for part in _PARTS:
        path = common.require(os.path.join(raw_dir, f"{part}.json"),
                              f"the FGVCx fungi {part} annotations (images, annotations, "
                              "categories)")
        with open(path, encoding="utf-8") as f:
            loaded.append(json.load(f))
    return loaded


def labels(train, val, where="train.json"):
    """The official class labels `"{id:04d}.{name}"` of the categories, in category-id order."""
    if train["categories"] != val["categories"]:
        raise ValueError(f"{where}: its categories differ from those of val.json")
    categories = sorted(train["categories"], key=operator.itemgetter("id"))
    ids = [c["id"] for c in categories]
    if ids != list(range(len(categories))):
        raise ValueError(f"{where}: category ids must run 0..{len(categories) - 1}")
    return ["{:04d}.{}".format(c["id"], c["name"]) for c in categories]


def split_labels(class_labels):
    """The official seeded split of the labels in category-id order."""
    return common.seeded_class_split(list(class_labels), NUM_TRAIN, NUM_VALID, NUM_TEST)


def _files_by_category(raw_dir, train, val):
    image_list = train["images"] + val["images"]
    category_of = {}
    for image in image_list:
        if image["id"] in category_of:
            raise ValueError(f"{raw_dir}: image id {image['id']} occurs twice in "
                             "train.json / val.json")
        category_of[image["id"]] = None
    for annotation in train["annotations"] + val["annotations"]:
        image_id = annotation["image_id"]
        if category_of.get(image_id, 0) is not None:
            raise ValueError(f"{raw_dir}: image id {image_id} is annotated twice or has no "
                             "images entry in train.json / val.json")
        category_of[image_id] = annotation["category_id"]
    files = collections.defaultdict(list)
    for image in image_list:
        category = category_of[image["id"]]
        if category is None:
            raise ValueError(f"{raw_dir}: image {image['file_name']} has no annotation in "
                             "train.json / val.json")
        files[category].append(os.path.join(raw_dir, image["file_name"]))
    return files


def plan(raw_dir, name=NAME):
    """The official fungi classes, splits and images of `raw_dir`."""
    train, val = _annotations(raw_dir)
    splits = split_labels(labels(train, val, os.path.join(raw_dir, "train.json")))
    files = _files_by_category(raw_dir, train, val)
    first = next((paths[0] for paths in files.values() if paths), None)
    if first is not None:
        folder = os.path.join(raw_dir, os.path.relpath(first, raw_dir).split(os.sep)[0])
        common.require(folder, "the fungi images named by train.json and val.json")
    classes = []
    for label in common.classes_in_id_order(splits):
        category = int(label[:4])
        if not files.get(category):
            raise ValueError(f"{raw_dir}: train.json / val.json list no image of category "
                             f"{category} ({label})")
        classes.append(common.files_class(label, files[category]))
    return common.flat_plan(name, splits, classes)
