"""FGVC-Aircraft (fgvc-aircraft-2013b): 100 model variants, each image cropped to its box.

Official rules (AircraftConverter): the variants of `data/variants.txt`, sorted, are split
70 / 15 / 15 by the seeded draw; an image's variant comes from `images_variant_trainval.txt`
and `images_variant_test.txt` (test wins on a repeated id); a class's images are its ids
sorted as strings, `data/images/<id>.jpg`, each cropped to its `images_box.txt` box
`xmin ymin xmax ymax` used as the PIL box as written (which also drops the copyright band).
"""

import collections
import os

from ctx_tf.data.sources import common

NAME = "aircraft"
RAW_EXPECTS = ("--raw_dir: the fgvc-aircraft-2013b folder; reads data/variants.txt, "
               "data/images_variant_trainval.txt, data/images_variant_test.txt, "
               "data/images_box.txt and data/images/<id>.jpg")
NUM_TRAIN, NUM_VALID, NUM_TEST = 70, 15, 15


def _lines(path, holds):
    with open(common.require(path, holds), encoding="utf-8") as f:
        return [line.split("\n")[0] for line in f if line.strip()]


def variants(raw_dir):
    """The variant (class) names of data/variants.txt, sorted as the official split takes them."""
    path = os.path.join(raw_dir, "data", "variants.txt")
    return sorted(line.strip() for line in _lines(path, "the 100 aircraft variant names"))


def split_variants(names):
    """The official split of the sorted variant names."""
    return common.seeded_class_split(sorted(names), NUM_TRAIN, NUM_VALID, NUM_TEST)


def _boxes(raw_dir):
    path = os.path.join(raw_dir, "data", "images_box.txt")
    boxes = {}
    for line in _lines(path, "one 'id xmin ymin xmax ymax' line per image"):
        fields = line.split(" ")
        if len(fields) != 5:
            raise ValueError(f"{path}: expected 'id xmin ymin xmax ymax', got {line!r}")
        boxes[fields[0]] = tuple(int(v) for v in fields[1:])
    return boxes


def _image_variants(raw_dir):
    image_variant = {}
    for part in ("trainval", "test"):
        path = os.path.join(raw_dir, "data", f"images_variant_{part}.txt")
        for line in _lines(path, f"one 'id variant' line per {part} image"):
            image_id, variant = line.split(" ", 1)
            image_variant[image_id] = variant
    by_variant = collections.defaultdict(list)
    for image_id, variant in image_variant.items():
        by_variant[variant].append(image_id)
    return by_variant


def plan(raw_dir, name=NAME):
    """The official aircraft classes, splits and cropped images of `raw_dir`."""
    splits = split_variants(variants(raw_dir))
    boxes = _boxes(raw_dir)
    by_variant = _image_variants(raw_dir)
    names = common.classes_in_id_order(splits)
    if set(by_variant) != set(names):
        odd = sorted(set(by_variant) ^ set(names))
        raise ValueError(f"{os.path.join(raw_dir, 'data')}: the variants of the "
                         f"images_variant_*.txt files differ from variants.txt on {odd[:5]}")
    classes = []
    for variant in names:
        ids = sorted(by_variant[variant])
        missing = [i for i in ids if i not in boxes]
        if missing:
            raise ValueError(f"{os.path.join(raw_dir, 'data', 'images_box.txt')} has no box "
                             f"for image {missing[0]}")
        paths = [os.path.join(raw_dir, "data", "images", f"{i}.jpg") for i in ids]
        classes.append(common.files_class(variant, paths, [boxes[i] for i in ids]))
    return common.flat_plan(name, splits, classes)
