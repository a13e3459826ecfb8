"""A folder tree of images as a `SourcePlan`: `root/<class>/<image>` or, bi-level,
`root/<superclass>/<class>/<image>` (the writer's `--images_root`), so that it is converted by the
same engine, with the same bad-image policy, as the Meta-Dataset sources."""

import dataclasses
import functools
import os
import pathlib

from PIL import Image

from ctx_tf.data.dataset_spec import SPLIT_NAMES
from ctx_tf.data.writing import engine
from ctx_tf.data.writing.errors import SourceWriteError
from ctx_tf.data.writing.image_encoding import DEFAULT_JPEG_QUALITY, encode_jpeg
from ctx_tf.data.writing.plan import ClassPlan, ImageRef, SourcePlan, check_complete_jpeg
from ctx_tf.data.writing.report import ConversionReport
from ctx_tf.data.writing.splits import (DEFAULT_SEED, DEFAULT_TEST_FRACTION,
                                        DEFAULT_VALID_FRACTION, order_classes, resolve_splits)

# Files of a class folder that are images: what Pillow can open, by extension.
IMAGE_EXTENSIONS = frozenset(ext.lower() for ext in Image.registered_extensions())


def _list_dir(path: pathlib.Path, dirs: bool):
    names = []
    for entry in sorted(os.listdir(path)):
        if entry.startswith("."):
            continue
        p = path / entry
        if dirs and p.is_dir():
            names.append(entry)
        elif not dirs and p.is_file():
            names.append(entry)
    return names


@dataclasses.dataclass(frozen=True)
class FolderImage(ImageRef):
    """An image file of a folder tree, saved with the writer's JPEG quality."""

    quality: int = DEFAULT_JPEG_QUALITY

    def encode(self) -> bytes:
        data = encode_jpeg(self.path, quality=self.quality, invert=self.invert)
        check_complete_jpeg(data)
        return data


def _list_images(directory: pathlib.Path, invert, quality):
    """(the FolderImage items of a class folder in name order, [(path, reason)] left out)."""
    items, skipped = [], []
    for entry in sorted(os.listdir(directory)):
        path = directory / entry
        if path.is_dir():
            if not entry.startswith("."):
                skipped.append((str(path), "a folder inside a class folder"))
        elif entry.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS:
            skipped.append((str(path), "not an image file"))
        else:
            items.append(FolderImage(str(path), invert=invert, quality=quality))
    return tuple(items), skipped


def folder_plan(images_root, name, bilevel=False, splits=None, seed=DEFAULT_SEED,
                valid_fraction=DEFAULT_VALID_FRACTION, test_fraction=DEFAULT_TEST_FRACTION,
                invert=False, quality=DEFAULT_JPEG_QUALITY) -> SourcePlan:
    """The `SourcePlan` of a folder tree (see `write_source_from_folder`)."""
    if not name or os.sep in name or name in (".", ".."):
        raise SourceWriteError(f"invalid source name {name!r}")
    root = pathlib.Path(images_root)
    if not root.is_dir():
        raise SourceWriteError(f"images root {root} is not a directory")
    class_dirs, class_names, superclasses = [], [], None
    if bilevel:
        superclasses = []
        for sc in _list_dir(root, dirs=True):
            members = []
            for c in _list_dir(root / sc, dirs=True):
                members.append(len(class_dirs))
                class_dirs.append(root / sc / c)
                class_names.append(f"{sc}-{c}")
            if not members:
                raise SourceWriteError(f"superclass folder {root / sc} has no class folders")
            superclasses.append((sc, members))
    else:
        for c in _list_dir(root, dirs=True):
            class_dirs.append(root / c)
            class_names.append(c)
    if not class_dirs:
        raise SourceWriteError(f"no class folders found under {root}")
    items = [n for n, _ in superclasses] if bilevel else class_names
    what = "superclass" if bilevel else "class"
    split_items = resolve_splits(items, splits, seed, valid_fraction, test_fraction, what)
    order, per_split, sc_info = order_classes(class_names, superclasses, split_items)
    classes, skipped = [], []
    for i in order:
        images, left_out = _list_images(class_dirs[i], invert, int(quality))
        if not images:
            raise SourceWriteError(f"class folder {class_dirs[i]} holds no image file")
        skipped.extend(left_out)
        classes.append(ClassPlan(class_names[i], functools.partial(iter, images), len(images)))
    spec_type, fields = "flat", {}
    if sc_info is not None:
        spec_type = "bilevel"
        fields = {"superclass_names": sc_info[0],
                  "superclasses_per_split": dict(zip(SPLIT_NAMES, sc_info[1])),
                  "classes_per_superclass": sc_info[2]}
    return SourcePlan(name, tuple(classes), dict(zip(SPLIT_NAMES, per_split)),
                      spec_type=spec_type, spec_fields=fields, skipped=tuple(skipped))


def write_source_from_folder(images_root, records_root, name, bilevel=False, splits=None,
                             seed=DEFAULT_SEED, valid_fraction=DEFAULT_VALID_FRACTION,
                             test_fraction=DEFAULT_TEST_FRACTION, invert=False,
                             quality=DEFAULT_JPEG_QUALITY, overwrite=False, spec_path=None,
                             workers=1, strict=False, log=None) -> ConversionReport:
    """Writes ``<records_root>/<name>/`` from a folder tree of image files, with the
    conversion engine of the Meta-Dataset sources (resume, bad-image policy, report).

    Layout: ``images_root/<class>/<image>`` or, with ``bilevel=True``,
    ``images_root/<superclass>/<class>/<image>``. Folders and files are taken in sorted name
    order. Files that are not images (hidden files such as .DS_Store, Thumbs.db, CSV, text:
    any extension Pillow does not open) are left out and counted in the report. An image that
    cannot be read is named in the report and skipped (the spec counts what was written), or
    refused with ``strict=True``, which leaves nothing behind. Bi-level class names are
    ``"<superclass>-<class>"``.

    ``splits`` splits classes (or superclasses when bi-level): a mapping from split name to
    a list of folder names (kept in list order, like an official splits file), a triple of
    counts over the sorted folders, or None for the seeded random split (default fractions
    0.7/0.15/0.15, seed 0; see `ctx_tf.data.writing.splits`).
    """
    plan = folder_plan(images_root, name, bilevel, splits, seed, valid_fraction,
                       test_fraction, invert, quality)
    return engine.convert(plan, records_root, workers=workers, strict=strict,
                          overwrite=overwrite, spec_path=spec_path, log=log)
