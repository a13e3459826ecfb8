"""Writes image classification data held in memory as a source in the official layout.

A *source* is one folder ``<records_root>/<name>/`` holding one TFRecord file per class,
``{class_id}.tfrecords``, plus ``dataset_spec.json``. Class ids are absolute and contiguous per
split: TRAIN classes first, then VALID, then TEST. Every record is a ``tf.train.Example`` with
exactly two features, ``image`` (the encoded JPEG) and ``label`` (the absolute class id).

Images are stored as the official converter stores them: a file that Pillow reads as an RGB
JPEG (and that needs no inversion) is kept byte for byte; anything else is converted to RGB,
optionally colour-inverted, and encoded as a JPEG with Pillow's defaults (quality 75).

Splits, when not given explicitly, are drawn at random with a seed (see
:mod:`ctx_tf.data.writing.splits`; defaults 0.7 / 0.15 / 0.15, seed 0). Image folders are
written by :func:`ctx_tf.data.writing.folder.write_source_from_folder`; the consistency check
of a written source is :func:`ctx_tf.data.checking.consistency.check_source`; the command is
``python -m ctx_tf.data.writer``.
"""

import dataclasses
import os
import pathlib
from typing import List

from ctx_tf.data.dataset_spec import DEFAULT_FILE_PATTERN as FILE_PATTERN
from ctx_tf.data.dataset_spec import SPEC_FILENAME, SPLIT_NAMES
from ctx_tf.data.reading.record_format import encode_example, write_tfrecord
from ctx_tf.data.writing.errors import SourceWriteError
from ctx_tf.data.writing.image_encoding import encode_jpeg
from ctx_tf.data.writing.report import SourceReport
from ctx_tf.data.writing.spec_writer import (make_bilevel_dataset_spec, make_dataset_spec,
                                             write_dataset_spec)
from ctx_tf.data.writing.splits import (DEFAULT_SEED, DEFAULT_TEST_FRACTION,
                                        DEFAULT_VALID_FRACTION, order_classes, resolve_splits)


def _prepare_output_dir(records_root, name, overwrite) -> pathlib.Path:
    if not name or os.sep in name or name in (".", ".."):
        raise SourceWriteError(f"invalid source name {name!r}")
    out = pathlib.Path(records_root) / name
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"source directory {out} exists and is not empty; refusing to overwrite it "
                "(pass overwrite=True / --overwrite to replace it)")
        # Drop the old spec first so that an interrupted rewrite is never mistaken for a
        # complete source.
        old_spec = out / SPEC_FILENAME
        if old_spec.exists():
            old_spec.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def _remove_stale_records(out: pathlib.Path, num_classes: int, keep=None):
    expected = {FILE_PATTERN.format(i) for i in range(num_classes)}
    if keep is not None:
        expected |= set(keep)
    for entry in out.iterdir():
        if entry.name.endswith(".tfrecords") and entry.name not in expected:
            entry.unlink()


@dataclasses.dataclass
class _ClassToWrite:
    name: str
    images: object  # callable returning an iterable of encoded image bytes
    origin: str     # for error messages


def _write_classes(out: pathlib.Path, classes: List[_ClassToWrite], first_id=0):
    counts = []
    for offset, entry in enumerate(classes):
        class_id = first_id + offset
        path = out / FILE_PATTERN.format(class_id)

        def records(entry=entry, class_id=class_id):
            for image_bytes in entry.images():
                yield encode_example(image_bytes, class_id)

        try:
            counts.append(write_tfrecord(path, records()))
        except SourceWriteError as e:
            raise SourceWriteError(f"class {class_id} ({entry.name!r}, {entry.origin}): {e}") \
                from e
        if counts[-1] == 0:
            raise SourceWriteError(
                f"class {class_id} ({entry.name!r}, {entry.origin}) has no images")
    return counts


def _finish(out, name, spec_path, class_entries, split_class_counts, superclass_info,
            image_counts):
    if superclass_info is None:
        spec = make_dataset_spec(name, spec_path, [c.name for c in class_entries],
                                 image_counts, split_class_counts)
    else:
        superclass_names, superclasses_per_split, classes_per_superclass = superclass_info
        spec = make_bilevel_dataset_spec(
            name, spec_path, superclass_names, superclasses_per_split, classes_per_superclass,
            [c.name for c in class_entries], image_counts)
    write_dataset_spec(out, spec)
    _remove_stale_records(out, len(class_entries))
    images_per_split = {}
    start = 0
    for s, n in zip(SPLIT_NAMES, split_class_counts):
        images_per_split[s] = int(sum(image_counts[start:start + n]))
        start += n
    return SourceReport(str(out), name, dict(zip(SPLIT_NAMES, split_class_counts)),
                        images_per_split, spec)


def write_source_from_arrays(records_root, name, images_per_class, class_names=None,
                             splits=None, superclasses=None, seed=DEFAULT_SEED,
                             valid_fraction=DEFAULT_VALID_FRACTION,
                             test_fraction=DEFAULT_TEST_FRACTION, invert=False, quality=75,
                             overwrite=False, spec_path=None) -> SourceReport:
    """Writes ``<records_root>/<name>/`` from images held in memory.

    Args:
      records_root: folder that receives the source folder.
      name: the source name (folder name and spec ``name``).
      images_per_class: one entry per class: a uint8/bool array [n_c, H, W] or
        [n_c, H, W, 3], or a list of per-image arrays (sizes may differ).
      class_names: one name per class (default ``"class<i>"``).
      splits: see :func:`ctx_tf.data.writing.splits.resolve_splits`; it splits classes, or
        superclasses when ``superclasses`` is given. Default: random split with ``seed`` and
        the fractions.
      superclasses: for a bi-level source, a list of ``(superclass_name, [class indices])``;
        classes are numbered superclass by superclass in that list order.
      invert: colour-invert every image before encoding.
      quality: JPEG quality.
      overwrite: replace a non-empty existing source folder.
      spec_path: value of the spec's ``path`` field (default ``records_root/name``).
    """
    num = len(images_per_class)
    if class_names is None:
        class_names = [f"class{i}" for i in range(num)]
    class_names = [str(c) for c in class_names]
    if len(class_names) != num:
        raise SourceWriteError(f"{len(class_names)} class names for {num} classes")
    if superclasses is not None:
        superclasses = [(str(n), [int(i) for i in members]) for n, members in superclasses]
        for sc_name, members in superclasses:
            bad = [i for i in members if not 0 <= i < num]
            if bad:
                raise SourceWriteError(f"superclass {sc_name!r}: class indices {bad} out of "
                                       f"range [0, {num})")
        items = [n for n, _ in superclasses]
        what = "superclass"
    else:
        items, what = class_names, "class"
    split_items = resolve_splits(items, splits, seed, valid_fraction, test_fraction, what)
    order, per_split, sc_info = order_classes(class_names, superclasses, split_items)

    def images_of(i):
        def gen():
            for j, img in enumerate(images_per_class[i]):
                try:
                    yield encode_jpeg(img, quality=quality, invert=invert)
                except SourceWriteError as e:
                    raise SourceWriteError(f"image {j}: {e}") from e
        return gen

    entries = [_ClassToWrite(class_names[i], images_of(i), f"input class index {i}")
               for i in order]
    out = _prepare_output_dir(records_root, name, overwrite)
    counts = _write_classes(out, entries)
    if spec_path is None:
        spec_path = os.path.join(str(records_root), name)
    return _finish(out, name, spec_path, entries, per_split, sc_info, counts)
