"""Synthetic sources at the benchmark's shape: official class layouts, generated images.

`write_benchmark_copy(records_root, name)` writes a source in the official layout whose
`dataset_spec.json` is the official one of `name` (from the shipped facts: its spec type,
class ids, names, splits, and for ILSVRC the WordNet DAG; Omniglot stays bi-level) with every
class cut to at most `max_images_per_class` images, and the counts of the DAG's internal nodes
recomputed from the cut leaves. `write_flat_source` writes a flat source of any size. The
images are generated JPEGs (a pool reused across records, so writing thousands of classes
takes seconds), optionally padded to a realistic record size.

They let a run, a test or a benchmark exercise the pipelines at the real number of classes and
spec types without the downloads (`benchmarks/scale.py`, the all-sources tests). Nothing learnt
on them means anything: every class draws from the same image pool.
"""

import io
import os

import numpy as np
from PIL import Image

from ctx_tf.data import facts
from ctx_tf.data.reading.record_format import encode_example, write_tfrecord
from ctx_tf.data.writing import spec_writer

_JPEG_COMMENT = b"\xff\xfe"  # a COM segment: decoders skip it
_MAX_SEGMENT = 65533


def jpeg_pool(count, image_size=16, record_bytes=None, seed=0):
    """`count` distinct JPEGs of `image_size` px (smooth colours plus noise), each padded with
    comment segments to about `record_bytes` bytes when given (the decoded pixels are
    unchanged by the padding)."""
    rng = np.random.RandomState(seed)
    pool = []
    for _ in range(count):
        corners = rng.uniform(0, 255, size=(2, 2, 3))
        ramp = np.linspace(0.0, 1.0, image_size)
        rows = corners[0][None] * (1 - ramp)[:, None, None] + corners[1][None] * ramp[:, None,
                                                                                      None]
        base = rows[:, :1] * (1 - ramp)[None, :, None] + rows[:, 1:] * ramp[None, :, None]
        pixels = np.clip(base + rng.normal(0, 20, size=base.shape), 0, 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(out, format="JPEG", quality=90)
        pool.append(_padded(out.getvalue(), record_bytes))
    return pool


def _padded(jpeg, record_bytes):
    missing = 0 if record_bytes is None else int(record_bytes) - len(jpeg)
    segments = []
    while missing > 4:
        size = min(_MAX_SEGMENT, missing - 4)
        segments.append(_JPEG_COMMENT + (size + 2).to_bytes(2, "big") + b"\0" * size)
        missing -= size + 4
    return jpeg[:2] + b"".join(segments) + jpeg[2:]  # right after the start-of-image marker


def write_class_file(path, class_id, count, pool, offset=0):
    """Writes `count` records of class `class_id` (images taken round-robin from `pool`,
    starting at `offset`), atomically."""
    write_tfrecord(path, (encode_example(pool[(offset + i) % len(pool)], class_id)
                          for i in range(count)))


def _write_source(directory, spec, counts, pool):
    os.makedirs(directory, exist_ok=True)
    for class_id, count in enumerate(counts):
        write_class_file(os.path.join(directory, f"{class_id}.tfrecords"), class_id, count,
                         pool, offset=class_id)
    spec_writer.write_dataset_spec(directory, spec)  # last: the source is complete
    return directory


def write_benchmark_copy(records_root, name, max_images_per_class=20, image_size=16,
                         record_bytes=None, pool_size=64, seed=0):
    """Writes `<records_root>/<name>`: the official spec of `name` with classes cut to at most
    `max_images_per_class` images, and generated records; returns the folder."""
    spec = facts.dataset_spec(name)
    directory = os.path.join(os.fspath(records_root), name)
    spec["path"] = directory
    cap = int(max_images_per_class)
    if spec["__class__"] == "HierarchicalDatasetSpecification":
        leaf_counts = {}
        for split, counts in spec["images_per_class"].items():
            leaves = {n["wn_id"] for n in spec["split_subgraphs"][split] if not n["children_ids"]}
            leaf_counts.update({wn_id: min(counts[wn_id], cap) for wn_id in leaves})
        spec["images_per_class"] = {
            split: spec_writer.spanning_counts(nodes, leaf_counts)
            for split, nodes in spec["split_subgraphs"].items()}
        names = spec["class_names"]
        counts = [leaf_counts[names[str(i)]] for i in range(len(names))]
    else:
        spec["images_per_class"] = {k: min(v, cap) for k, v in spec["images_per_class"].items()}
        counts = [spec["images_per_class"][str(i)] for i in range(len(spec["images_per_class"]))]
    return _write_source(directory, spec, counts,
                         jpeg_pool(pool_size, image_size, record_bytes, seed))


def write_flat_source(records_root, name, classes_per_split, images_per_class, image_size=16,
                      record_bytes=None, pool_size=64, seed=0):
    """Writes `<records_root>/<name>`: a flat source with (TRAIN, VALID, TEST) class counts
    `classes_per_split`, `images_per_class` generated records each; returns the folder."""
    directory = os.path.join(os.fspath(records_root), name)
    num_classes = sum(classes_per_split)
    counts = [int(images_per_class)] * num_classes
    spec = spec_writer.make_dataset_spec(
        name, directory, [f"class_{i}" for i in range(num_classes)], counts,
        list(classes_per_split))
    return _write_source(directory, spec, counts,
                         jpeg_pool(pool_size, image_size, record_bytes, seed))
