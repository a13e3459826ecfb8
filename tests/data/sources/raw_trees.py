"""Helpers for the source tests: tiny images and the official split/spec files."""

import functools
import io
import json

from PIL import Image

from tests.conftest import shared_path


@functools.lru_cache(maxsize=None)
def tiny_jpeg():
    """The bytes of a small RGB JPEG, written wherever a raw tree needs an image file."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (10, 200, 30)).save(buf, format="JPEG")
    return buf.getvalue()


def official(filename):
    """A JSON file of /work/shared/meta_dataset_specs (skips the test when absent)."""
    with open(shared_path("meta_dataset_specs", filename)) as f:
        return json.load(f)


def official_class_names(source):
    """The class names of the official dataset_spec.json of `source`, in class-id order."""
    names = official(f"{source}_dataset_spec.json")["class_names"]
    return [names[str(i)] for i in range(len(names))]
