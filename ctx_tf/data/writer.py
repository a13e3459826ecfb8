"""Writes image classification data in Meta-Dataset's record format, and checks such sources.

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
  ``root/<superclass>/<class>/<image>``.
* :func:`check_source` - the consistency check of a written (or official) source.

Splits, when not given explicitly, are drawn with ``numpy.random.RandomState(seed)``: the
items (classes, or superclasses for a bi-level source) are permuted, the first
``round(valid_fraction * N)`` of the permutation become VALID, the next
``round(test_fraction * N)`` TEST, the rest TRAIN; inside each split the items keep their
input order (sorted names for folders). Defaults: 0.7 / 0.15 / 0.15, seed 0.

Command line::

  python -m ctx_tf.data.writer --images_root=DIR --records_root=DIR --name=NAME \
      [--bilevel] [--valid_fraction=0.15] [--test_fraction=0.15] [--seed=0] \
      [--splits_file=splits.json] [--invert] [--overwrite]
  python -m ctx_tf.data.writer --check=RECORDS_ROOT/NAME
"""

import collections
import dataclasses
import json
import os
import pathlib
from typing import Dict, List, Optional, Sequence

import numpy as np

from ctx_tf.data.dataset_spec import DEFAULT_FILE_PATTERN as FILE_PATTERN
from ctx_tf.data.dataset_spec import SPEC_FILENAME, Split, load_dataset_spec
from ctx_tf.data.image_encoding import encode_jpeg
from ctx_tf.data.records import EXAMPLE_KEYS, SourceWriteError, encode_example, write_tfrecord
from ctx_tf.data.spec_writer import (SPLIT_NAMES, make_bilevel_dataset_spec, make_dataset_spec,
                                     write_dataset_spec)
from ctx_tf.data.spec_writer import spec_to_json  # re-export for the merge, removed by the lead
from ctx_tf.files import atomic_write

_write_tfrecord = write_tfrecord  # re-export for the merge, removed by the lead
_write_text = atomic_write  # re-export for the merge, removed by the lead

DEFAULT_VALID_FRACTION = 0.15
DEFAULT_TEST_FRACTION = 0.15
DEFAULT_SEED = 0


class SourceCheckError(ValueError):
    """A source folder failed :func:`check_source`; ``.report.problems`` lists every problem."""

    def __init__(self, report):
        self.report = report
        shown = report.problems[:40]
        lines = [f"source {report.directory} failed the consistency check "
                 f"({len(report.problems)} problem(s)):"]
        lines += [f"  - {p}" for p in shown]
        if len(report.problems) > len(shown):
            lines.append(f"  ... and {len(report.problems) - len(shown)} more")
        super().__init__("\n".join(lines))


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
# Splits.


def _normalize_split_key(key):
    k = str(key).upper()
    return {"TRAIN": "TRAIN", "VALID": "VALID", "VALIDATION": "VALID", "TEST": "TEST"}.get(k)


def resolve_splits(item_names: Sequence[str], splits=None, seed=DEFAULT_SEED,
                   valid_fraction=DEFAULT_VALID_FRACTION,
                   test_fraction=DEFAULT_TEST_FRACTION, what="class"):
    """Assigns items (classes or superclasses) to TRAIN/VALID/TEST.

    Args:
      item_names: the items, in input order.
      splits: None (seeded random split by fractions), a triple of counts
        ``(n_train, n_valid, n_test)`` taken in input order, or explicit lists: a mapping
        from split name ("TRAIN"/"VALID"/"TEST", any case, "validation" allowed) or a triple
        of lists, holding item indices or names, kept in list order. Every item must be
        assigned exactly once.
      seed, valid_fraction, test_fraction: for the random split.
      what: word used in error messages.

    Returns:
      A list of three lists of item indices (TRAIN, VALID, TEST).
    """
    n = len(item_names)
    if splits is None:
        if not (0 <= valid_fraction <= 1 and 0 <= test_fraction <= 1
                and valid_fraction + test_fraction <= 1):
            raise SourceWriteError(
                f"invalid split fractions valid={valid_fraction} test={test_fraction}")
        n_valid = int(round(valid_fraction * n))
        n_test = min(int(round(test_fraction * n)), n - n_valid)
        perm = np.random.RandomState(seed).permutation(n)
        valid = sorted(perm[:n_valid].tolist())
        test = sorted(perm[n_valid:n_valid + n_test].tolist())
        train = sorted(perm[n_valid + n_test:].tolist())
        return [train, valid, test]
    if (not isinstance(splits, dict) and len(splits) == 3
            and all(isinstance(m, (list, tuple, range)) for m in splits)):
        splits = dict(zip(SPLIT_NAMES, splits))
    if isinstance(splits, dict):
        index_of = {}
        for i, item in enumerate(item_names):
            index_of.setdefault(item, i)
        out = {s: [] for s in SPLIT_NAMES}
        for key, members in splits.items():
            split = _normalize_split_key(key)
            if split is None:
                raise SourceWriteError(f"unknown split name {key!r} (use TRAIN, VALID, TEST)")
            for m in members:
                if isinstance(m, (int, np.integer)) and not isinstance(m, bool):
                    if not 0 <= int(m) < n:
                        raise SourceWriteError(f"split {split}: {what} index {m} out of range "
                                               f"[0, {n})")
                    out[split].append(int(m))
                elif m in index_of:
                    out[split].append(index_of[m])
                else:
                    raise SourceWriteError(f"split {split}: unknown {what} {m!r}")
        result = [out[s] for s in SPLIT_NAMES]
        _check_partition(result, item_names, what)
        return result
    counts = [int(c) for c in splits]
    if len(counts) != 3 or min(counts) < 0 or sum(counts) != n:
        raise SourceWriteError(
            f"split counts {tuple(splits)} must be three non-negative numbers summing to the "
            f"number of {what}es ({n})")
    a, b = counts[0], counts[0] + counts[1]
    return [list(range(0, a)), list(range(a, b)), list(range(b, n))]


def _check_partition(result, item_names, what):
    seen = {}
    for split, members in zip(SPLIT_NAMES, result):
        for m in members:
            if m in seen:
                raise SourceWriteError(
                    f"{what} {item_names[m]!r} is assigned to both {seen[m]} and {split}")
            seen[m] = split
    missing = [item_names[i] for i in range(len(item_names)) if i not in seen]
    if missing:
        raise SourceWriteError(
            f"{len(missing)} {what}(es) are in no split: {missing[:10]}")


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


def _order_classes(class_names, superclasses, split_items):
    """Returns (ordered class indices, classes per split, superclass info or None)."""
    if superclasses is None:
        order = [i for members in split_items for i in members]
        return order, [len(m) for m in split_items], None
    order, per_split, sc_names, sc_sizes = [], [], [], []
    for members in split_items:
        n = 0
        for k in members:
            sc_name, sc_classes = superclasses[k]
            sc_names.append(sc_name)
            sc_sizes.append(len(sc_classes))
            order.extend(sc_classes)
            n += len(sc_classes)
        per_split.append(n)
    seen = set()
    for i in order:
        if i in seen:
            raise SourceWriteError(f"class {class_names[i]!r} is in more than one superclass")
        seen.add(i)
    missing = [class_names[i] for i in range(len(class_names)) if i not in seen]
    if missing:
        raise SourceWriteError(f"{len(missing)} class(es) are in no superclass: {missing[:10]}")
    return order, per_split, (sc_names, [len(m) for m in split_items], sc_sizes)


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
      splits: see :func:`resolve_splits`; it splits classes, or superclasses when
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
    order, per_split, sc_info = _order_classes(class_names, superclasses, split_items)

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


def write_source_from_folder(images_root, records_root, name, bilevel=False, splits=None,
                             seed=DEFAULT_SEED, valid_fraction=DEFAULT_VALID_FRACTION,
                             test_fraction=DEFAULT_TEST_FRACTION, invert=False, quality=75,
                             overwrite=False, spec_path=None) -> WriteReport:
    """Writes ``<records_root>/<name>/`` from a folder tree of image files.

    Layout: ``images_root/<class>/<image>`` or, with ``bilevel=True``,
    ``images_root/<superclass>/<class>/<image>``. Folders and files are taken in sorted name
    order; hidden entries (names starting with ".") are skipped. Bi-level class names are
    ``"<superclass>-<class>"``.

    ``splits`` splits classes (or superclasses when bi-level): a mapping from split name to
    a list of folder names (kept in list order, like an official splits file), a triple of
    counts over the sorted folders, or None for the seeded random split (default fractions
    0.7/0.15/0.15, seed 0; see the module docstring).
    """
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
    order, per_split, sc_info = _order_classes(class_names, superclasses, split_items)

    def images_of(d):
        def gen():
            files = _list_dir(d, dirs=False)
            for f in files:
                try:
                    yield encode_jpeg(d / f, quality=quality, invert=invert)
                except SourceWriteError:
                    raise
                except Exception as e:  # pylint: disable=broad-except
                    raise SourceWriteError(f"cannot read image {d / f}: {e}") from e
        return gen

    entries = [_ClassToWrite(class_names[i], images_of(class_dirs[i]), str(class_dirs[i]))
               for i in order]
    out = _prepare_output_dir(records_root, name, overwrite)
    counts = _write_classes(out, entries)
    if spec_path is None:
        spec_path = os.path.join(str(records_root), name)
    return _finish(out, name, spec_path, entries, per_split, sc_info, counts)


# ------------------------------------------------------------------------------------------
# Consistency check.


@dataclasses.dataclass
class SourceCheckReport:
    """Result of :func:`check_source`."""
    directory: str
    name: str
    num_classes: int
    records_per_split: Dict[str, int]
    num_records: int
    problems: List[str]

    @property
    def ok(self):
        return not self.problems

    def summary(self) -> str:
        status = "OK" if self.ok else f"FAILED ({len(self.problems)} problems)"
        per = ", ".join(f"{s} {n}" for s, n in self.records_per_split.items())
        return (f"check of {self.directory}: {status}; {self.num_classes} classes, "
                f"{self.num_records} records ({per})")


def _read_records(path):
    """All serialized records of one TFRecord file (a list of bytes)."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    out = []
    for batch in tf.data.TFRecordDataset(str(path)).batch(4096):
        out.extend(batch.numpy().tolist())
    return out


def _stream_records(paths):
    """Yields (file index, serialized record) over all files in one tf.data pipeline.

    One pipeline for all files is much faster than one dataset per file (thousands of
    small files). Raises the TensorFlow error if any file is unreadable.
    """
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    if not paths:
        return
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.range(len(paths), dtype=tf.int64), [str(p) for p in paths]))
    ds = ds.flat_map(lambda i, p: tf.data.TFRecordDataset(p).map(lambda r: (i, r)))
    for ids, records in ds.batch(8192).prefetch(1):
        yield from zip(ids.numpy().tolist(), records.numpy().tolist())


def _check_record(raw, class_id):
    """Returns a problem description for one record, or None."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    try:
        example = tf.train.Example.FromString(raw)
    except Exception as e:  # pylint: disable=broad-except
        return f"not a tf.train.Example ({e})"
    feats = example.features.feature
    keys = sorted(feats.keys())
    if keys != sorted(EXAMPLE_KEYS):
        return f"keys {keys}, expected exactly {list(EXAMPLE_KEYS)}"
    image = feats["image"]
    if image.WhichOneof("kind") != "bytes_list" or len(image.bytes_list.value) != 1:
        return "field 'image' is not a single bytes value"
    label = feats["label"]
    if label.WhichOneof("kind") != "int64_list" or len(label.int64_list.value) != 1:
        return "field 'label' is not a single int64 value"
    if label.int64_list.value[0] != class_id:
        return f"label {label.int64_list.value[0]}, expected class id {class_id}"
    return None


def check_source(directory, raise_on_error=True, max_problems_per_file=3) -> SourceCheckReport:
    """Checks a source folder the way the official consistency checker does, and more.

    Checks: spec ``name`` equals the folder name; the set of ``*tfrecords*`` files equals
    ``{file_pattern.format(i) for i in range(num_classes)}``; each file's record count equals
    the spec's image count for that class; every record is an Example with exactly the keys
    ``image`` (one bytes value) and ``label`` (one int64 equal to the file's class id).

    Returns a :class:`SourceCheckReport`; raises :class:`SourceCheckError` listing all
    problems when there are any (unless ``raise_on_error=False``). A bad spec raises the spec
    loader's ``DatasetSpecError``.
    """
    directory = pathlib.Path(directory)
    spec = load_dataset_spec(str(directory), check_name=False)
    problems = []
    dir_name = os.path.basename(os.path.normpath(str(directory.resolve())))
    if spec.name != dir_name:
        problems.append(f"{directory / SPEC_FILENAME}: spec name {spec.name!r} differs from the "
                        f"directory name {dir_name!r}")
    num_classes = spec.num_classes
    expected = {spec.file_pattern.format(i): i for i in range(num_classes)}
    present = {p for p in os.listdir(directory) if "tfrecords" in p}
    for f in sorted(set(expected) - present, key=lambda f: expected[f]):
        problems.append(f"{directory / f}: missing (class {expected[f]})")
    for f in sorted(present - set(expected)):
        problems.append(f"{directory / f}: unexpected file (spec has {num_classes} classes)")
    split_of = {}
    for split in Split:
        for c in spec.get_classes(split):
            split_of[int(c)] = split.name
    records_per_split = collections.OrderedDict((s.name, 0) for s in Split)
    files = [(f, class_id) for f, class_id in sorted(expected.items(), key=lambda kv: kv[1])
             if f in present]
    paths = [directory / f for f, _ in files]
    counts = [0] * len(files)
    bad = [0] * len(files)
    record_problems = [[] for _ in files]

    def check(k, raw):
        issue = _check_record(raw, files[k][1])
        if issue is not None:
            bad[k] += 1
            if bad[k] <= max_problems_per_file:
                record_problems[k].append(f"{paths[k]}: record {counts[k]}: {issue}")
        counts[k] += 1

    unreadable = {}
    try:
        for k, raw in _stream_records(paths):
            check(k, raw)
    except Exception:  # pylint: disable=broad-except
        # Some file is unreadable: redo the check file by file to find out which.
        counts = [0] * len(files)
        bad = [0] * len(files)
        record_problems = [[] for _ in files]
        for k, path in enumerate(paths):
            try:
                records = _read_records(path)
            except Exception as e:  # pylint: disable=broad-except
                first = str(e).splitlines()[0] if str(e) else ""
                unreadable[k] = f"{type(e).__name__}: {first}"
                continue
            for raw in records:
                check(k, raw)
    total = 0
    for k, (f, class_id) in enumerate(files):
        path = paths[k]
        if k in unreadable:
            problems.append(f"{path}: unreadable TFRecord file (class {class_id}): "
                            f"{unreadable[k]}")
            continue
        want = int(spec.num_images(class_id))
        if counts[k] != want:
            problems.append(f"{path}: {counts[k]} records, spec says {want} "
                            f"(class {class_id})")
        problems.extend(record_problems[k])
        if bad[k] > max_problems_per_file:
            problems.append(f"{path}: {bad[k] - max_problems_per_file} more bad records")
        total += counts[k]
        if class_id in split_of:
            records_per_split[split_of[class_id]] += counts[k]
    report = SourceCheckReport(str(directory), spec.name, num_classes, dict(records_per_split),
                               total, problems)
    if problems and raise_on_error:
        raise SourceCheckError(report)
    return report


# ------------------------------------------------------------------------------------------
# Command line.


def _load_splits_file(path):
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise SourceWriteError(f"splits file {path}: invalid JSON ({e})") from e
    if not isinstance(data, dict):
        raise SourceWriteError(f"splits file {path}: expected an object with train/valid/test")
    return data


def run_cli(flag_values) -> int:
    """Runs the command line with parsed absl ``flag_values`` (see :func:`define_flags`)."""
    f = flag_values
    if f.check:
        report = check_source(f.check, raise_on_error=False)
        print(report.summary())
        for p in report.problems:
            print("  - " + p)
        return 1 if report.problems else 0
    missing = [n for n in ("images_root", "records_root", "name") if not getattr(f, n)]
    if missing:
        raise SystemExit("missing flags: " + ", ".join("--" + m for m in missing) +
                         " (or use --check=DIR)")
    splits = _load_splits_file(f.splits_file) if f.splits_file else None
    report = write_source_from_folder(
        f.images_root, f.records_root, f.name, bilevel=f.bilevel, splits=splits, seed=f.seed,
        valid_fraction=f.valid_fraction, test_fraction=f.test_fraction, invert=f.invert,
        overwrite=f.overwrite)
    print(report.summary())
    return 0


def define_flags(flag_values=None):
    """Defines the command-line flags on ``flag_values`` (default: the global absl FLAGS)."""
    from absl import flags  # pylint: disable=g-import-not-at-top

    fv = flags.FLAGS if flag_values is None else flag_values
    flags.DEFINE_string("images_root", None, "Folder of images: root/<class>/<image> or, with "
                        "--bilevel, root/<superclass>/<class>/<image>.", flag_values=fv)
    flags.DEFINE_string("records_root", None, "Folder receiving the <name>/ source folder.",
                        flag_values=fv)
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
    flags.DEFINE_bool("overwrite", False, "Replace an existing non-empty source folder.",
                      flag_values=fv)
    flags.DEFINE_string("check", None, "Only check this source folder and exit.",
                        flag_values=fv)
    return fv


def _main(argv):
    from absl import flags  # pylint: disable=g-import-not-at-top

    if len(argv) > 1:
        raise SystemExit(f"unexpected arguments: {argv[1:]}")
    return run_cli(flags.FLAGS)


if __name__ == "__main__":
    from absl import app  # pylint: disable=g-import-not-at-top

    define_flags()
    app.run(_main)
