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
from typing import Dict, List

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
    split_of = {int(c): split.name for split in Split for c in spec.get_classes(split)}
    files = [(f, class_id) for f, class_id in sorted(expected.items(), key=lambda kv: kv[1])
             if f in present]
    paths = [directory / f for f, _ in files]
    counts = [0] * len(files)
    bad = [0] * len(files)
    record_problems = [[] for _ in files]
    damage = {}

    def check(k, raw):
        issue = _check_record(raw, files[k][1])
        if issue is not None:
            bad[k] += 1
            if bad[k] <= max_problems_per_file:
                record_problems[k].append(f"{paths[k]}: record {counts[k]}: {issue}")
        counts[k] += 1

    try:
        for k, raw in _stream_records(paths):
            check(k, raw)
    except (tf.errors.OpError, OSError):
        # Some file is damaged: redo the check file by file to find every damaged one.
        counts, bad = [0] * len(files), [0] * len(files)
        record_problems = [[] for _ in files]
        for k, path in enumerate(paths):
            records, damage_k = _read_file(path)
            if damage_k is not None:
                damage[k] = damage_k
            for raw in records:
                check(k, raw)
    records_per_split = collections.OrderedDict((s.name, 0) for s in Split)
    total = 0
    for k, (_, class_id) in enumerate(files):
        path = paths[k]
        want = int(spec.num_images(class_id))
        if k in damage:
            problems.append(f"{path}: unreadable TFRecord file (class {class_id}): {damage[k]} "
                            f"(after {counts[k]} good record(s); spec says {want})")
        elif counts[k] == 0 and want:
            problems.append(f"{path}: empty file, spec says {want} records (class {class_id})")
        elif counts[k] != want:
            problems.append(f"{path}: {counts[k]} records, spec says {want} "
                            f"(class {class_id})")
        problems.extend(record_problems[k])
        if bad[k] > max_problems_per_file:
            problems.append(f"{path}: {bad[k] - max_problems_per_file} more bad records")
        total += counts[k]
        records_per_split[split_of[class_id]] += counts[k]
    report = SourceCheckReport(str(directory), spec.name, num_classes, dict(records_per_split),
                               total, problems, differences)
    if not report.ok and raise_on_error:
        raise SourceCheckError(report)
    return report
