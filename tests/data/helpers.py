"""Tiny official-layout sources written by the tests, and the images they hold.

`write_tiny_source` is the one builder of a tiny source (`<root>/<name>/{class_id}.tfrecords`
and `dataset_spec.json`, written with ctx_tf's own writers); it returns the loaded spec. Its
images are either

- "colours": each class a noisy flat colour, learnable from the pixels in a few updates (for
  training, evaluation and command tests), or
- "bands": two flat grey bands telling the image's class id (top half) and record index
  (bottom half), robust to JPEG (`band_image`, read back from decoded images by `read_bands`),
  for the reader and pipeline tests; `record_fn` replaces a band record by any record.

`encode` and `example` make the records of hand-written files.
"""

import io
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from ctx_tf.data.dataset_spec import load_dataset_spec
from ctx_tf.data.reading.record_format import write_tfrecord
from ctx_tf.data.writing.arrays import write_source_from_arrays
from ctx_tf.data.writing.spec_writer import make_dataset_spec, write_dataset_spec

IMAGE_SIDE = 32  # of the band images
CLASS_STEP, INDEX_STEP, BASE = 8, 6, 10


def band_image(class_id, index):
    """An IMAGE_SIDE square: top half grey level of `class_id`, bottom half of `index`."""
    image = np.empty([IMAGE_SIDE, IMAGE_SIDE, 3], np.uint8)
    image[: IMAGE_SIDE // 2] = BASE + CLASS_STEP * class_id
    image[IMAGE_SIDE // 2:] = BASE + INDEX_STEP * index
    return image


def read_bands(images):
    """Decoded float images in [-1, 1] -> (class ids, record indices) arrays."""
    images = np.asarray(images)
    pixels = (images + 1.0) * 127.5
    top = pixels[:, 4, IMAGE_SIDE // 2 - 4, 0]
    bottom = pixels[:, -4, IMAGE_SIDE // 2 + 4, 0]
    return (np.rint((top - BASE) / CLASS_STEP).astype(int),
            np.rint((bottom - BASE) / INDEX_STEP).astype(int))


def encode(image, fmt, **kwargs):
    """`image` (uint8 array) encoded by Pillow as `fmt` ("JPEG", "PNG"; `kwargs` to `save`)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def example(image_bytes, label):
    """A `tf.train.Example` with the official features `image` and `label`, serialized by
    protobuf as the official converter does (its feature order may vary between processes)."""
    return tf.train.Example(features=tf.train.Features(feature={
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_bytes])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    })).SerializeToString()


def _colour_classes(counts, size, seed):
    rng = np.random.RandomState(seed)
    arrays = []
    for count in counts:
        colour = rng.randint(0, 256, size=3)
        noise = rng.randint(-30, 31, size=(count, size, size, 3))
        arrays.append(np.clip(colour + noise, 0, 255).astype(np.uint8))
    return arrays


def _write_band_source(directory, name, counts, splits, fmt, record_fn):
    os.makedirs(directory, exist_ok=True)
    for class_id, count in enumerate(counts):
        def records(class_id=class_id, count=count):
            for index in range(count):
                if record_fn is not None:
                    yield record_fn(class_id, index)
                else:
                    yield example(encode(band_image(class_id, index), fmt), class_id)
        write_tfrecord(os.path.join(directory, f"{class_id}.tfrecords"), records())
    # The path the official converter recorded, not this folder: readers use the folder they
    # load the spec from.
    spec = make_dataset_spec(name, f"/path/to/records/{name}",
                             [f"class{i}" for i in range(len(counts))], counts, list(splits))
    write_dataset_spec(directory, spec)


def write_tiny_source(records_root, name="tiny", images_per_class=10, splits=(4, 4, 6),
                      images="colours", size=12, seed=0, fmt="JPEG", record_fn=None):
    """Writes `<records_root>/<name>` and returns its loaded `DatasetSpecification`.

    `images_per_class`: one count for every class, or a list of per-class counts;
    `splits`: the (TRAIN, VALID, TEST) class counts, classes numbered in that order. "colours"
    images are `size` px JPEGs drawn with `seed`; "bands" images are IMAGE_SIDE px, encoded as
    `fmt`, or the records `record_fn(class_id, index)` returns.
    """
    num_classes = sum(splits)
    counts = ([int(images_per_class)] * num_classes if np.isscalar(images_per_class)
              else [int(n) for n in images_per_class])
    assert len(counts) == num_classes, (counts, splits)
    directory = os.path.join(os.fspath(records_root), name)
    if images == "colours":
        assert fmt == "JPEG" and record_fn is None, "colour sources are JPEG records"
        write_source_from_arrays(os.fspath(records_root), name,
                                 _colour_classes(counts, size, seed), splits=tuple(splits),
                                 seed=seed)
    elif images == "bands":
        _write_band_source(directory, name, counts, splits, fmt, record_fn)
    else:
        raise ValueError(f"images must be 'colours' or 'bands', not {images!r}")
    return load_dataset_spec(directory)
