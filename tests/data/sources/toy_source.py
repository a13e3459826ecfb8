"""A toy source for the engine and CLI tests: generated JPEG/PNG classes in a folder.

`make_raw(root)` writes `root/<class>/<image>` (class k holds 2 + k images, alternating
JPEG and PNG, plus a `.DS_Store` and a `labels.csv` that are not images) and
`root/annotations.txt` (the class names, one a line); `plan(raw_dir)` is a source module's
plan: it needs the annotation file and leaves the non-image files out (`SourcePlan.skipped`).
"""

import functools
import io
import os

import numpy as np
from PIL import Image

from ctx_tf.data.sources.common import require_file
from ctx_tf.data.writing.errors import SourceConversionError
from ctx_tf.data.writing.plan import ClassPlan, ImageRef, SourcePlan

NAME = "toy"
RAW_EXPECTS = "a folder of <class>/<image> folders and annotations.txt"
NOT_IMAGES = (".DS_Store", "labels.csv")


def make_raw(root, num_classes=5, side=24, seed=0):
    rng = np.random.RandomState(seed)
    os.makedirs(root, exist_ok=True)
    names = [f"class{k:02d}" for k in range(num_classes)]
    for k, name in enumerate(names):
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        for i in range(2 + k):
            pixels = rng.randint(0, 256, size=(side, side + i, 3)).astype(np.uint8)
            fmt = "JPEG" if i % 2 == 0 else "PNG"
            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, format=fmt)
            with open(os.path.join(folder, f"{i:03d}.{fmt.lower()}"), "wb") as f:
                f.write(buf.getvalue())
        for junk in NOT_IMAGES:
            with open(os.path.join(folder, junk), "wb") as f:
                f.write(b"a,b\n1,2\n")
    with open(os.path.join(root, "annotations.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(names) + "\n")
    return root


def _images(paths):
    return (ImageRef(p) for p in paths)


def plan(raw_dir):
    annotations = require_file(os.path.join(raw_dir, "annotations.txt"),
                               "the class names, one a line")
    with open(annotations, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    classes, skipped = [], []
    for name in names:
        folder = os.path.join(raw_dir, name)
        if not os.path.isdir(folder):
            raise SourceConversionError(f"{folder}: folder of class {name!r} not found")
        paths = []
        for entry in sorted(os.listdir(folder)):
            if entry in NOT_IMAGES:
                skipped.append((os.path.join(folder, entry), "not an image"))
            else:
                paths.append(os.path.join(folder, entry))
        classes.append(ClassPlan(name, functools.partial(_images, tuple(paths)), len(paths)))
    n = len(classes)
    split = {"TRAIN": n - 2 * (n // 3), "VALID": n // 3, "TEST": n // 3}
    return SourcePlan(NAME, tuple(classes), split, skipped=tuple(skipped))
