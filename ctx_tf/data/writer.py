"""Writes image classification data (arrays, image folders) as a source in the official layout.

A *source* is one folder ``<records_root>/<name>/`` holding one TFRecord file per class,
``{class_id}.tfrecords``, plus ``dataset_spec.json``. Class ids are absolute and contiguous per
split: TRAIN classes first, then VALID, then TEST. Every record is a ``tf.train.Example`` with
exactly two features, ``image`` (the encoded JPEG) and ``label`` (the absolute class id).

Images are stored as the official converter stores them: a file that Pillow reads as an RGB
JPEG (and that needs no inversion) is kept byte for byte; anything else is converted to RGB,
optionally colour-inverted, and encoded as a JPEG with Pillow's defaults (quality 75).

Entry points:

* :func:`write_source_from_arrays` - classes given as uint8/bool arrays in memory.
* :func:`write_source_from_folder` - ``root/<class>/<image>`` or, bi-level,
  ``root/<superclass>/<class>/<image>``, as a `SourcePlan` written by the conversion engine of
  the Meta-Dataset sources (:mod:`ctx_tf.data.sources.engine`), so it shares their bad-image
  policy: non-image files are left out and counted, unreadable images are named and skipped
  (or refused with ``--strict``, leaving nothing behind), and a killed run resumes.

The consistency check of a written (or official) source is :func:`ctx_tf.data.check.check_source`,
also run by ``--check``.

Splits, when not given explicitly, are drawn at random with a seed (see
:mod:`ctx_tf.data.splits`; defaults 0.7 / 0.15 / 0.15, seed 0).

Command line::

  python -m ctx_tf.data.writer --images_root=DIR --records_root_dir=DIR --name=NAME \
      [--bilevel] [--valid_fraction=0.15] [--test_fraction=0.15] [--seed=0] \
      [--splits_file=splits.json] [--invert] [--overwrite] [--workers=N] [--strict]
  python -m ctx_tf.data.writer --check=RECORDS_ROOT/NAME [--reference_spec=FILE|official]
"""

from ctx_tf.cli import quiet_start

# First, so that `python -m` captures TensorFlow's start-up logs of the imports below.
quiet_start.begin_if_main(__name__)

import dataclasses
import os
import pathlib
from typing import Dict, List, Optional

from absl import app, flags

from ctx_tf import cli
from ctx_tf.data.check import check_source
from ctx_tf.data.dataset_spec import DEFAULT_FILE_PATTERN as FILE_PATTERN
from ctx_tf.data.dataset_spec import SPEC_FILENAME
from ctx_tf.data.image_encoding import DEFAULT_JPEG_QUALITY, encode_jpeg
from ctx_tf.data.records import SourceWriteError, encode_example, write_tfrecord
from ctx_tf.data.sources import engine, folder
from ctx_tf.data.sources.report import ConversionReport
from ctx_tf.data.splits import (DEFAULT_SEED, DEFAULT_TEST_FRACTION, DEFAULT_VALID_FRACTION,
                                load_splits_file, order_classes, resolve_splits)
from ctx_tf.data.spec_writer import (SPLIT_NAMES, make_bilevel_dataset_spec, make_dataset_spec,
                                     write_dataset_spec)


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


# ------------------------------------------------------------------------------------------
# The generic writer.


@dataclasses.dataclass
class WriteReport:
    """What a writer produced."""
    directory: str
    name: str
    classes_per_split: Dict[str, int]
    images_per_split: Dict[str, int]
    superclasses_per_split: Optional[Dict[str, int]]
    spec: dict

    @property
    def num_classes(self):
        return sum(self.classes_per_split.values())

    @property
    def num_images(self):
        return sum(self.images_per_split.values())

    def summary(self) -> str:
        lines = [f"wrote source {self.name!r} to {self.directory}: {self.num_classes} classes, "
                 f"{self.num_images} images"]
        for s in SPLIT_NAMES:
            extra = ""
            if self.superclasses_per_split is not None:
                extra = f" in {self.superclasses_per_split[s]} superclasses"
            lines.append(f"  {s}: {self.classes_per_split[s]} classes{extra}, "
                         f"{self.images_per_split[s]} images")
        return "\n".join(lines)


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
        supers = None
    else:
        superclass_names, superclasses_per_split, classes_per_superclass = superclass_info
        spec = make_bilevel_dataset_spec(
            name, spec_path, superclass_names, superclasses_per_split, classes_per_superclass,
            [c.name for c in class_entries], image_counts)
        supers = dict(zip(SPLIT_NAMES, superclasses_per_split))
    write_dataset_spec(out, spec)
    _remove_stale_records(out, len(class_entries))
    images_per_split = {}
    start = 0
    for s, n in zip(SPLIT_NAMES, split_class_counts):
        images_per_split[s] = int(sum(image_counts[start:start + n]))
        start += n
    return WriteReport(str(out), name, dict(zip(SPLIT_NAMES, split_class_counts)),
                       images_per_split, supers, spec)


def write_source_from_arrays(records_root, name, images_per_class, class_names=None,
                             splits=None, superclasses=None, seed=DEFAULT_SEED,
                             valid_fraction=DEFAULT_VALID_FRACTION,
                             test_fraction=DEFAULT_TEST_FRACTION, invert=False, quality=75,
                             overwrite=False, spec_path=None) -> WriteReport:
    """Writes ``<records_root>/<name>/`` from images held in memory.

    Args:
      records_root: folder that receives the source folder.
      name: the source name (folder name and spec ``name``).
      images_per_class: one entry per class: a uint8/bool array [n_c, H, W] or
        [n_c, H, W, 3], or a list of per-image arrays (sizes may differ).
      class_names: one name per class (default ``"class<i>"``).
      splits: see :func:`ctx_tf.data.splits.resolve_splits`; it splits classes, or superclasses when
        ``superclasses`` is given. Default: random split with ``seed`` and the fractions.
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
    0.7/0.15/0.15, seed 0; see the module docstring).
    """
    plan = folder.folder_plan(images_root, name, bilevel, splits, seed, valid_fraction,
                              test_fraction, invert, quality)
    return engine.convert(plan, records_root, workers=workers, strict=strict,
                          overwrite=overwrite, spec_path=spec_path, log=log)


# ------------------------------------------------------------------------------------------
# Command line.


def run_cli(flag_values) -> int:
    """Runs the command line with parsed absl ``flag_values`` (see :func:`define_flags`)."""
    f = flag_values
    if f.check:
        report = check_source(f.check, raise_on_error=False, reference_spec=f.reference_spec)
        print(report.summary())
        for p in report.problems + report.reference_differences:
            print("  - " + p)
        return 0 if report.ok else 1
    if f.reference_spec:
        raise SourceWriteError("--reference_spec only goes with --check")
    missing = [n for n in ("images_root", "records_root_dir", "name") if not getattr(f, n)]
    if missing:
        raise SourceWriteError("missing flags: " + ", ".join("--" + m for m in missing) +
                               " (or use --check=DIR)")
    splits = load_splits_file(f.splits_file) if f.splits_file else None
    report = write_source_from_folder(
        f.images_root, f.records_root_dir, f.name, bilevel=f.bilevel, splits=splits, seed=f.seed,
        valid_fraction=f.valid_fraction, test_fraction=f.test_fraction, invert=f.invert,
        overwrite=f.overwrite, workers=f.workers, strict=f.strict)
    print(report.summary())
    return 0


def define_flags(flag_values=None):
    """Defines the command-line flags on ``flag_values`` (default: the global absl FLAGS)."""
    fv = flags.FLAGS if flag_values is None else flag_values
    flags.DEFINE_string("images_root", None, "Folder of images: root/<class>/<image> or, with "
                        "--bilevel, root/<superclass>/<class>/<image>.", flag_values=fv)
    flags.DEFINE_string("records_root_dir", None, "Folder receiving the <name>/ source folder.",
                        flag_values=fv)
    flags.DEFINE_alias("records_root", "records_root_dir", flag_values=fv)
    flags.DEFINE_string("name", None, "Source name (folder and spec name).", flag_values=fv)
    flags.DEFINE_bool("bilevel", False, "Two-level tree: superclasses, then classes.",
                      flag_values=fv)
    flags.DEFINE_float("valid_fraction", DEFAULT_VALID_FRACTION,
                       "Fraction of classes (superclasses if bi-level) drawn for VALID.",
                       flag_values=fv)
    flags.DEFINE_float("test_fraction", DEFAULT_TEST_FRACTION,
                       "Fraction of classes (superclasses if bi-level) drawn for TEST.",
                       flag_values=fv)
    flags.DEFINE_integer("seed", DEFAULT_SEED, "Seed of the random split.", flag_values=fv)
    flags.DEFINE_string("splits_file", None, "JSON with lists 'train', 'valid', 'test' of "
                        "class (superclass) folder names; overrides the random split.",
                        flag_values=fv)
    flags.DEFINE_bool("invert", False, "Colour-invert the images.", flag_values=fv)
    flags.DEFINE_bool("overwrite", False, "Replace an existing non-empty source folder "
                      "(without it, the folder of an interrupted run is resumed).",
                      flag_values=fv)
    flags.DEFINE_integer("workers", 1, "Processes writing classes in parallel.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_bool("strict", False, "Refuse an unreadable image instead of skipping it "
                      "(and leave nothing behind).", flag_values=fv)
    flags.DEFINE_string("check", None, "Only check this source folder and exit.",
                        flag_values=fv)
    flags.DEFINE_string("reference_spec", None, "With --check: also compare the source's spec "
                        "with this dataset_spec.json, or with 'official': the official spec of "
                        "the Meta-Dataset source of that name (shipped with ctx_tf).",
                        flag_values=fv)
    return fv


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    return run_cli(flags.FLAGS)


if __name__ == "__main__":
    define_flags()
    cli.run("data.writer", main)
