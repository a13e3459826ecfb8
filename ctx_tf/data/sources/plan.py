"""What a source converter decides, as plain data: classes, ids, splits and each record's image.

A source module (`ctx_tf.data.sources.<source>`) reads a public download and returns a
`SourcePlan`; the conversion engine turns any plan into `<class_id>.tfrecords` files and the
`dataset_spec.json`, so every source shares one writer, one resume rule, one progress line and
one bad-image policy. Plans are cheap to build (file listings and annotation files only) and
picklable, so worker processes can take classes from them.
"""

import dataclasses
from typing import Any, Callable, Iterable, Mapping, Optional, Tuple

SPEC_TYPES = ("flat", "bilevel", "hierarchical")


@dataclasses.dataclass(frozen=True)
class ImageRef:
    """The image of one record, and how the official converter derives it.

    path: the raw image file, or (with `row`) the class's `.npy` array file.
    crop: a PIL crop box `(left, upper, right, lower)` applied after conversion to RGB.
    invert: black <-> white after cropping (Omniglot).
    row: the row of an `[N, side * side]` array in `path` (QuickDraw bitmaps).
    """

    path: str
    crop: Optional[Tuple[float, float, float, float]] = None
    invert: bool = False
    row: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class ClassPlan:
    """One class: its name in the spec and its records' images in the official write order.

    images: a picklable zero-argument callable (a module-level function or a
      `functools.partial` of one) returning an iterable of `ImageRef`; it is called in the
      worker that writes the class, so a class of any size never sits in memory at once.
    num_images: the number of images when known from the listing (progress, ETA, resume);
      None when only reading the class tells.
    """

    name: str
    images: Callable[[], Iterable[ImageRef]]
    num_images: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class SourcePlan:
    """A whole source: class `i` of `classes` becomes `<i>.tfrecords`.

    classes_per_split: {"TRAIN": n, "VALID": n, "TEST": n}; ids are TRAIN classes first, then
      VALID, then TEST (the official layout).
    spec_type: "flat" (DatasetSpecification), "bilevel" (Omniglot) or "hierarchical" (ILSVRC).
    spec_fields: the type-specific fields of the official `dataset_spec.json` beyond name, path,
      class names, images per class and classes per split (bilevel: superclass fields;
      hierarchical: the split subgraphs and the rest, as in the official JSON).
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
        counts = [self.classes_per_split.get(s, 0) for s in ("TRAIN", "VALID", "TEST")]
        if sum(counts) != len(self.classes):
            raise ValueError(
                f"source {self.name!r}: classes_per_split {dict(self.classes_per_split)} adds "
                f"up to {sum(counts)}, but the plan has {len(self.classes)} classes")
