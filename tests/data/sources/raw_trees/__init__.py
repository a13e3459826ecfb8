"""Helpers for the source tests: tiny images and the official split/spec files; one module per
source (`raw_trees.aircraft`, ...) writes that source's raw download in miniature."""

import functools
import io

from PIL import Image

from ctx_tf.data import facts

# The official JSON files (named as in meta-dataset's dataset_conversion folder) and the facts
# that hold them.
_FACTS = (("_dataset_spec.json", facts.dataset_spec), ("_splits.json", facts.splits),
          ("_num_leaf_images.json", facts.num_leaf_images))


def image_bytes(size=(8, 6), colour=(10, 200, 30), fmt="JPEG"):
    """The bytes of a flat RGB image of `size` (width, height) and `colour`, encoded as `fmt`."""
    buf = io.BytesIO()
    Image.new("RGB", tuple(size), tuple(colour)).save(buf, format=fmt)
    return buf.getvalue()


@functools.lru_cache(maxsize=None)
def tiny_jpeg():
    """The bytes of a small RGB JPEG, written wherever a raw tree needs an image file."""
    return image_bytes()


def official(filename):
    """The official file `filename` (e.g. "dtd_splits.json") parsed, from the shipped facts
    (equal to the files: tests/data/test_facts.py)."""
    for suffix, lookup in _FACTS:
        if filename.endswith(suffix):
            return lookup(filename[:-len(suffix)])
    raise ValueError(f"no shipped fact holds the official file {filename}")


def official_class_names(source):
    """The class names of the official dataset_spec.json of `source`, in class-id order."""
    names = official(f"{source}_dataset_spec.json")["class_names"]
    return [names[str(i)] for i in range(len(names))]
