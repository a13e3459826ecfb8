"""Mini-ImageNet (diagnostics only): the 64 / 16 / 20 classes of Ravi & Larochelle's split.

Official rules (MiniImageNetConverter), on the pickles of github.com/renmengye/few-shot-ssl-public:
`mini-imagenet-cache-{train,val,test}.pkl` each hold `image_data` (uint8 [N, 84, 84, 3]) and
`class_dict` ({synset: [row, ...]}). Class ids run through train, then val, then test; within a
file the synsets are sorted. A class's records are its rows in `class_dict` order, each saved as
a JPEG of the RGB array.

The items are `PickleRow(path=<the .pkl file>, row=<row of image_data>)`: a worker loads one
pickle at a time (`load_cache` keeps only the last one) and saves each row as the official
converter does, `Image.fromarray(row)` saved as a JPEG with Pillow's defaults.
"""

import dataclasses
import functools
import os
import pickle

from ctx_tf.data.dataset_spec import SPLIT_NAMES
from ctx_tf.data.sources import common
from ctx_tf.data.writing import image_encoding
from ctx_tf.data.writing.plan import ClassPlan, SourcePlan

NAME = "mini_imagenet"
RAW_EXPECTS = ("--raw_dir: the folder holding mini-imagenet-cache-train.pkl, "
               "mini-imagenet-cache-val.pkl and mini-imagenet-cache-test.pkl "
               "(few-shot-ssl-public); reads their class_dict and image_data")
NUM_CLASSES = {"train": 64, "val": 16, "test": 20}


def cache_path(raw_dir, part):
    return os.path.join(raw_dir, f"mini-imagenet-cache-{part}.pkl")


@functools.lru_cache(maxsize=1)
def load_cache(path):
    """The dict of one Mini-ImageNet pickle (`image_data`, `class_dict`); the last one is kept,
    since a worker writes the classes of one file after another."""
    with open(path, "rb") as f:
        try:
            return pickle.load(f)
        except UnicodeDecodeError:  # written by Python 2
            f.seek(0)
            return pickle.load(f, encoding="latin1")


def image_rows(path):
    """The uint8 [N, height, width, 3] images of a Mini-ImageNet pickle (`PickleRow.row`
    indexes them)."""
    return load_cache(path)["image_data"]


@dataclasses.dataclass(frozen=True)
class PickleRow:
    """One image of a Mini-ImageNet pickle (a `plan` item)."""

    path: str
    row: int

    @property
    def where(self):
        return f"{self.path}[row {self.row}]"

    def encode(self) -> bytes:
        return image_encoding.encode_jpeg(image_rows(self.path)[self.row])


def _refs(path, rows):
    for row in rows:
        yield PickleRow(path, row)


def plan(raw_dir, name=NAME):
    """The official Mini-ImageNet classes, splits and image rows of `raw_dir`."""
    classes = []
    for part, expected in NUM_CLASSES.items():
        path = common.require(cache_path(raw_dir, part),
                              f"the Mini-ImageNet {part} images (image_data) and their "
                              "classes (class_dict)")
        class_dict = load_cache(path)["class_dict"]
        if len(class_dict) != expected:
            raise ValueError(f"{path} holds {len(class_dict)} classes; the official "
                             f"{part} split has {expected}")
        for synset in sorted(class_dict):
            rows = tuple(int(r) for r in class_dict[synset])
            classes.append(ClassPlan(name=synset, images=functools.partial(_refs, path, rows),
                                     num_images=len(rows)))
    load_cache.cache_clear()  # the planning process keeps no image data
    return SourcePlan(
        name=name,
        classes=tuple(classes),
        classes_per_split=dict(zip(SPLIT_NAMES, NUM_CLASSES.values())))
