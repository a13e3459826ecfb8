"""What a source converter decides, as plain data: classes, ids, splits and each record's image.

A source module (`ctx_tf.data.sources.<source>`) reads a public download and returns a
`SourcePlan`; the conversion engine turns any plan into `<class_id>.tfrecords` files and the
`dataset_spec.json`, so every source shares one writer, one resume rule, one progress line and
one bad-image policy. Plans are cheap to build (file listings and annotation files only) and
picklable, so worker processes can take classes from them.

The image of each record is an *item*: a picklable object with
  `where`: a string naming the raw file (and row, box, ...) in messages and reports, and
  `encode() -> bytes`: the record's image bytes by the official rule. It raises `LeftOut` for
    a record the official rules leave out when they see the image (e.g. an MSCOCO box that is
    empty once clipped to the image), and any other exception for an unreadable image.
`ImageRef` is the item of an image file, read as a file or in place from a zip or tar
archive (`archives.read`), or of a `.npy` row; a source module defines its own item class when
its images live elsewhere (rows of a pickle, a box of an image whose size only the image tells).
"""

import dataclasses
import functools
import io
from typing import Any, Callable, Iterable, Mapping, Optional, Tuple

import numpy as np
from PIL import Image

from ctx_tf.data.dataset_spec import SPLIT_NAMES
from ctx_tf.data.writing import archives, image_encoding

SPEC_TYPES = ("flat", "bilevel", "hierarchical")


class LeftOut(Exception):
    """Raised by an item's `encode()`: the official rule leaves this record out (the message
    says why). Counted in the conversion report; never an error, even with --strict."""


@functools.lru_cache(maxsize=4)
def _bitmaps(path):
    return np.load(path, mmap_mode="r")  # rows are read on demand, one class file at a time


def check_complete_jpeg(data):
    """Decodes a JPEG at 1/8 scale: kept byte for byte, a truncated file would only fail
    when training reads it; the reduced decode still reads every byte of the scan."""
    if data[:2] == b"\xff\xd8":
        image = Image.open(io.BytesIO(data))
        image.draft(image.mode, (1, 1))
        image.load()


@dataclasses.dataclass(frozen=True)
class ImageRef:
    """The item of an image file or of a `.npy` row, and how the official converter derives it.

    path: the raw image file, the archive holding it (with `member`), or (with `row`) the
      class's `.npy` array file.
    crop: a PIL crop box `(left, upper, right, lower)` applied after conversion to RGB.
    invert: black <-> white after cropping (Omniglot).
    row: the row of an `[N, side * side]` array in `path` (QuickDraw bitmaps).
    member: the image's name inside the archive `path`: a zip member, or with `span` a tar
      member (`<inner tar>/<file>` for a tar inside the tar).
    span: `(offset, size)` of a tar member's bytes in `path` (`archives.tar_of_tars`).
    """

    path: str
    crop: Optional[Tuple[float, float, float, float]] = None
    invert: bool = False
    row: Optional[int] = None
    member: Optional[str] = None
    span: Optional[Tuple[int, int]] = None

    @property
    def where(self):
        if self.row is not None:
            return f"{self.path}[row {self.row}]"
        return self.path if self.member is None else f"{self.path}:{self.member}"

    def read(self) -> bytes:
        """The raw file's bytes, as downloaded."""
        return archives.read(self.path, self.member, self.span)

    def encode(self) -> bytes:
        if self.row is not None:
            return image_encoding.encode_bitmap_row(_bitmaps(self.path)[self.row])
        data = image_encoding.encode_image_file(self.read(), crop=self.crop, invert=self.invert)
        check_complete_jpeg(data)
        return data


@dataclasses.dataclass(frozen=True)
class ClassPlan:
    """One class: its name in the spec and its records' images in the official write order.

    images: a picklable zero-argument callable (a module-level function or a
      `functools.partial` of one) returning an iterable of items (see the module docstring,
      e.g. `ImageRef`); it is called in the
      worker that writes the class, so a class of any size never sits in memory at once.
    num_images: the number of items when known from the listing (progress, ETA, resume);
      None when only reading the class tells.
    """

    name: str
    images: Callable[[], Iterable[Any]]
    num_images: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class SourcePlan:
    """A whole source: class `i` of `classes` becomes `<i>.tfrecords`.

    classes_per_split: {"TRAIN": n, "VALID": n, "TEST": n}; ids are TRAIN classes first, then
      VALID, then TEST (the official layout).
    spec_type: "flat" (DatasetSpecification), "bilevel" (Omniglot) or "hierarchical" (ILSVRC).
    spec_fields: the type-specific fields of the official `dataset_spec.json` beyond name, path,
      class names, images per class and classes per split (bilevel: superclass fields;
      hierarchical: "split_subgraphs" as in the official JSON, and "images_per_class" from the
      listings, which the engine replaces with the counts it wrote).
    skipped: `(path, reason)` of raw files the rules leave out on purpose (duplicates, files
      that are not images where the official converter skips them); reported, never errors.
    """

    name: str
    classes: Tuple[ClassPlan, ...]
    classes_per_split: Mapping[str, int]
    spec_type: str = "flat"
    spec_fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    skipped: Tuple[Tuple[str, str], ...] = ()

    def __post_init__(self):
        if self.spec_type not in SPEC_TYPES:
            raise ValueError(f"SourcePlan.spec_type must be one of {SPEC_TYPES}, "
                             f"got {self.spec_type!r}")
        counts = [self.classes_per_split.get(s, 0) for s in SPLIT_NAMES]
        if sum(counts) != len(self.classes):
            raise ValueError(
                f"source {self.name!r}: classes_per_split {dict(self.classes_per_split)} adds "
                f"up to {sum(counts)}, but the plan has {len(self.classes)} classes")
