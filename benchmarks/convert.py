"""Conversion speed: images/s per worker count on generated trees, and projected full-source times.

  python benchmarks/convert.py [--classes=8] [--images=40] [--workers=1,2]

Two generated sources: ILSVRC-like JPEG files (~400x350, kept byte for byte as the official
rule keeps RGB JPEGs, after the engine's truncation check) and QuickDraw-like 28x28 bitmap rows
of `.npy` files (each encoded as a JPEG). Each is converted by `engine.convert` with each worker
count. The steady rate is timed from the first images a worker reports (process start-up, now
well under a second since workers import no TensorFlow, is left out; the "with start-up" column
keeps it); the projection is the time a full source would take at the steady rate.
"""

import argparse
import functools
import os
import re
import tempfile
import time

import numpy as np
from PIL import Image

from ctx_tf.data.writing import engine
from ctx_tf.data.writing.plan import ClassPlan, ImageRef, SourcePlan
from ctx_tf.progress import format_duration

# Images of each full source (official dataset_spec.json totals, rounded), by the kind of
# image it is closest to.
FULL_SOURCES = {
    "jpeg": {"ilsvrc_2012": 1_281_167, "fungi": 89_760, "mscoco": 152_374,
             "cu_birds": 11_788, "aircraft": 10_000, "dtd": 5_640, "vgg_flower": 8_189,
             "traffic_sign": 39_209},
    "bitmap": {"quickdraw": 50_426_266},
}


_PROGRESS = re.compile(r": (\d+)/\d+ images")


def _jpeg_tree(root, classes, images, rng):
    plans = []
    for k in range(classes):
        folder = os.path.join(root, f"c{k}")
        os.makedirs(folder)
        refs = []
        for i in range(images):
            # Smooth content, so the JPEGs have realistic sizes (~30-60 KB).
            base = rng.randint(0, 256, size=(44, 50, 3)).astype(np.uint8)
            image = Image.fromarray(base).resize((400, 350), Image.BILINEAR)
            path = os.path.join(folder, f"{i}.JPEG")
            image.save(path, quality=90)
            refs.append(ImageRef(path))
        plans.append(ClassPlan(f"c{k}", functools.partial(iter, tuple(refs)), images))
    return plans


def _bitmap_tree(root, classes, images, rng):
    plans = []
    for k in range(classes):
        path = os.path.join(root, f"c{k}.npy")
        np.save(path, (rng.rand(images, 784) > 0.8).astype(np.uint8) * 255)
        refs = tuple(ImageRef(path, row=i) for i in range(images))
        plans.append(ClassPlan(f"c{k}", functools.partial(iter, refs), images))
    return plans


def _source(name, class_plans):
    n = len(class_plans)
    return SourcePlan(name, tuple(class_plans), {"TRAIN": n, "VALID": 0, "TEST": 0})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--images", type=int, default=40, help="images per class")
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    rng = np.random.RandomState(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        kinds = {"jpeg": _jpeg_tree, "bitmap": _bitmap_tree}
        for kind, make in kinds.items():
            raw = os.path.join(tmp, f"raw_{kind}")
            os.makedirs(raw)
            plan = _source(kind, make(raw, args.classes, args.images, rng))
            total = args.classes * args.images
            for workers in [int(w) for w in args.workers.split(",")]:
                seen = []  # (time, images written) of each progress line

                def log(line, seen=seen):
                    match = _PROGRESS.search(line)
                    if match and int(match.group(1)):
                        seen.append((time.monotonic(), int(match.group(1))))

                start = time.monotonic()
                engine.convert(plan, os.path.join(tmp, f"out_{kind}_{workers}"),
                               workers=workers, log=log, progress_every=0.0)
                end = time.monotonic()
                first_time, first_images = seen[0]
                rate = (total - first_images) / max(end - first_time, 1e-9)
                projected = ", ".join(f"{name} {format_duration(n / rate)}"
                                      for name, n in FULL_SOURCES[kind].items())
                rows.append((kind, workers, rate, total / (end - start), projected))
    print(f"{'images':<8} {'workers':>7} {'images/s':>9} {'with start-up':>13}  "
          "projected full source at the steady rate (h:mm:ss)")
    for kind, workers, rate, overall, projected in rows:
        print(f"{kind:<8} {workers:>7} {rate:>9.1f} {overall:>13.1f}  {projected}")
    print(f"({os.cpu_count()} cores; {args.classes} classes x {args.images} images per kind)")


if __name__ == "__main__":
    main()
