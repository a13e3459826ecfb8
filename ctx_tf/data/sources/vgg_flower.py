"""VGG Flower (Oxford 102 flowers): 102 species, split 71 / 15 / 16 by the official seeded draw.

Official rules (VGGFlowerConverter): class `i` (1-based) is named "<iii>.<label name>" with the
label names of the benchmark's VggFlower_labels.txt; `imagelabels.mat` holds one 1-based
label per image, image `n` (1-based) being `jpg/image_<nnnnn>.jpg`; a class's images are in
image-number order, uncropped. The `jpg/` folder is never listed: only those names are read.
"""

import os

import scipy.io

from ctx_tf.data import facts
from ctx_tf.data.sources import common

NAME = "vgg_flower"
RAW_EXPECTS = ("--raw_dir: the folder holding imagelabels.mat and jpg/ (the 102flowers.tgz "
               "images); reads imagelabels.mat and jpg/image_<nnnnn>.jpg")
NUM_TRAIN, NUM_VALID, NUM_TEST = 71, 15, 16


def split_classes(label_names):
    """The official split of the label names (in labels-file order), as "<iii>.<name>"."""
    names = [f"{i + 1:03d}.{n}" for i, n in enumerate(label_names)]
    return common.seeded_class_split(names, NUM_TRAIN, NUM_VALID, NUM_TEST)


def image_labels(raw_dir):
    """The 1-based label of each image, in image-number order, from imagelabels.mat."""
    path = common.require(os.path.join(raw_dir, "imagelabels.mat"),
                          "the 'labels' array (one 1-based class per image)")
    mat = scipy.io.loadmat(path)
    if "labels" not in mat:
        raise ValueError(f"{path} has no 'labels' array (found {sorted(mat)})")
    return [int(label) for label in mat["labels"][0]]


def plan(raw_dir, name=NAME):
    """The official VGG Flower classes, splits and image files of `raw_dir`."""
    splits = split_classes(facts.labels(NAME))
    common.require(os.path.join(raw_dir, "jpg"), "the images image_<nnnnn>.jpg")
    by_label = {}
    for n, label in enumerate(image_labels(raw_dir)):
        by_label.setdefault(label, []).append(
            os.path.join(raw_dir, "jpg", f"image_{n + 1:05d}.jpg"))
    classes = [common.files_class(class_name, by_label.get(int(class_name[:3]), []))
               for class_name in common.classes_in_id_order(splits)]
    return common.flat_plan(name, splits, classes)
