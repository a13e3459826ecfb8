"""The consistency check of a source folder in the official layout (written or official).

Every record of every class file is read through TensorFlow's TFRecord reader, which checks
each record's framing (length and the CRC32C of length and data); counts and labels are
compared with ``dataset_spec.json``. Every problem of every file is collected into one
:class:`SourceCheckReport`, so a damaged source is described in one pass. Optionally the
spec is compared with a reference spec (e.g. the official one): class names and images per
class.
"""

import collections
import dataclasses
import os
import pathlib
from typing import Dict, List, Optional

import tensorflow as tf

from ctx_tf.data.checking.reference_spec import compare_specs, load_reference
from ctx_tf.data.dataset_spec import SPEC_FILENAME, DatasetSpecError, Split, load_dataset_spec
from ctx_tf.data.reading.record_format import EXAMPLE_KEYS
from ctx_tf.errors import UserError

# Problems listed in an exception message; the report keeps them all.
_SHOWN_PROBLEMS = 40


class SourceCheckError(UserError, ValueError):
    """A source failed :func:`check_source`; ``.report`` lists every problem and difference."""

    def __init__(self, report):
        self.report = report
        found = report.problems + report.reference_differences
        shown = found[:_SHOWN_PROBLEMS]
        lines = [f"source {report.directory} failed the consistency check "
                 f"({len(report.problems)} problem(s), {len(report.reference_differences)} "
                 "difference(s) from the reference spec):"]
        lines += [f"  - {p}" for p in shown]
        if len(found) > len(shown):
            lines.append(f"  ... and {len(found) - len(shown)} more")
        super().__init__("\n".join(lines))


@dataclasses.dataclass
class SourceCheckReport:
    """Result of :func:`check_source`."""
    directory: str
    name: str
    num_classes: int
    records_per_split: Dict[str, int]
    num_records: int
    problems: List[str]
    reference_differences: List[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self):
        return not self.problems and not self.reference_differences

    def summary(self) -> str:
        if self.ok:
            status = "OK"
        else:
            status = f"FAILED ({len(self.problems)} problems"
            if self.reference_differences:
                status += f", {len(self.reference_differences)} differences from the reference"
            status += ")"
        per = ", ".join(f"{s} {n}" for s, n in self.records_per_split.items())
        return (f"check of {self.directory}: {status}; {self.num_classes} classes, "
                f"{self.num_records} records ({per})")


def _error_line(e):
    first = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {first}"


def _stream_records(paths):
    """Yields (file index, serialized record) over all files in one tf.data pipeline.

    One pipeline for all files is much faster than one dataset per file (thousands of
    small files). Raises TensorFlow's error if any file is damaged.
    """
    if not paths:
        return
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.range(len(paths), dtype=tf.int64), [str(p) for p in paths]))
    ds = ds.flat_map(lambda i, p: tf.data.TFRecordDataset(p).map(lambda r: (i, r)))
    for ids, records in ds.batch(8192).prefetch(1):
        yield from zip(ids.numpy().tolist(), records.numpy().tolist())


def _read_file(path):
    """(the records read before any damage, the damage or None) of one TFRecord file."""
    try:
        records = []
        for batch in tf.data.TFRecordDataset(str(path)).batch(4096):
            records.extend(batch.numpy().tolist())
        return records, None
    except (tf.errors.OpError, OSError) as e:
        damage = _error_line(e)
    # Damaged: read again record by record to keep every record before the damage.
    records = []
    try:
        for record in tf.data.TFRecordDataset(str(path)):
            records.append(record.numpy())
    except (tf.errors.OpError, OSError):
        pass
    return records, damage


def _check_record(raw, class_id):
    """Returns a problem description for one record, or None."""
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


def check_source(directory, raise_on_error=True, max_problems_per_file=3,
                 reference_spec=None) -> SourceCheckReport:
    """Checks a source folder the way the official consistency checker does, and more.

    Checks: spec ``name`` equals the folder name; the set of ``*tfrecords*`` files equals
    ``{file_pattern.format(i) for i in range(num_classes)}``; every file reads through
    (record framing and CRCs intact); each file's record count equals the spec's image count
    for that class; every record is an Example with exactly the keys ``image`` (one bytes
    value) and ``label`` (one int64 equal to the file's class id). With ``reference_spec``
    (a spec, a spec file, a source folder, or ``"official"``: the official spec of the
    Meta-Dataset source of that name, shipped in :mod:`ctx_tf.data.facts`) the spec is
    compared with it too (:mod:`ctx_tf.data.checking.reference_spec`).

    Returns a :class:`SourceCheckReport`; raises :class:`SourceCheckError` listing all
    problems when there are any (unless ``raise_on_error=False``). A missing folder or a bad
    spec raises the spec loader's ``DatasetSpecError``, naming the path.
    """
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise DatasetSpecError(f"{directory}: no such source folder (expected a folder "
                               f"holding {SPEC_FILENAME} and the class record files)")
    spec = load_dataset_spec(str(directory), check_name=False)
    differences = []
    if reference_spec is not None:
        differences = compare_specs(spec, *load_reference(reference_spec, spec.name))
    problems, class_files = _layout_problems(spec, directory)
    split_of = {int(c): split.name for split in Split for c in spec.get_classes(split)}
    records_per_split = collections.OrderedDict((s.name, 0) for s in Split)
    checks = _read_class_files(class_files, max_problems_per_file)
    for check in checks:
        problems.extend(check.problems(int(spec.num_images(check.class_id))))
        records_per_split[split_of[check.class_id]] += check.count
    report = SourceCheckReport(str(directory), spec.name, spec.num_classes,
                               dict(records_per_split), sum(c.count for c in checks), problems,
                               differences)
    if not report.ok and raise_on_error:
        raise SourceCheckError(report)
    return report


def _layout_problems(spec, directory):
    """(the problems of the folder's layout: a spec name other than the folder's, missing and
    unexpected record files; `(path, class id)` of each class file present, by class id)."""
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
    class_files = [(directory / f, class_id)
                   for f, class_id in sorted(expected.items(), key=lambda kv: kv[1])
                   if f in present]
    return problems, class_files


@dataclasses.dataclass
class _ClassFileCheck:
    """What reading one class file found: its records, the bad ones, the damage that ended it."""
    path: pathlib.Path
    class_id: int
    max_problems: int  # bad records described; the rest are counted
    count: int = 0
    bad: int = 0
    record_problems: List[str] = dataclasses.field(default_factory=list)
    damage: Optional[str] = None

    def add(self, raw):
        issue = _check_record(raw, self.class_id)
        if issue is not None:
            self.bad += 1
            if self.bad <= self.max_problems:
                self.record_problems.append(f"{self.path}: record {self.count}: {issue}")
        self.count += 1

    def problems(self, want):
        """The file's problems, given the records the spec says it holds."""
        found = []
        if self.damage is not None:
            found.append(f"{self.path}: unreadable TFRecord file (class {self.class_id}): "
                         f"{self.damage} (after {self.count} good record(s); spec says {want})")
        elif self.count == 0 and want:
            found.append(f"{self.path}: empty file, spec says {want} records "
                         f"(class {self.class_id})")
        elif self.count != want:
            found.append(f"{self.path}: {self.count} records, spec says {want} "
                         f"(class {self.class_id})")
        found.extend(self.record_problems)
        if self.bad > self.max_problems:
            found.append(f"{self.path}: {self.bad - self.max_problems} more bad records")
        return found


def _read_class_files(class_files, max_problems):
    """A `_ClassFileCheck` of each `(path, class id)`: all files read in one pipeline or, when
    some file is damaged, file by file, to find every damaged one."""
    checks = [_ClassFileCheck(path, class_id, max_problems) for path, class_id in class_files]
    try:
        for k, raw in _stream_records([check.path for check in checks]):
            checks[k].add(raw)
        return checks
    except (tf.errors.OpError, OSError):
        pass
    checks = [_ClassFileCheck(path, class_id, max_problems) for path, class_id in class_files]
    for check in checks:
        records, check.damage = _read_file(check.path)
        for raw in records:
            check.add(raw)
    return checks
