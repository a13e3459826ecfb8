"""Writes any `SourcePlan` as the official record layout: in parallel, resumable, spec last.

`convert(plan, records_root)` writes `<records_root>/<plan.name>/<class_id>.tfrecords`, one
atomic file per class (an existing final file is a complete class), then `dataset_spec.json`,
atomically and last, from the plan and the record counts actually written, so a half-converted
source never passes for a complete one. Classes are written by `workers` processes, the
largest first; every file depends only on the plan, so the output is the same for any number
of workers.

Resume: `conversion_manifest.json` in the source folder records each finished class's record
count and unreadable images. A rerun keeps every class whose file still holds that many
records and redoes the rest; `overwrite=True` starts afresh.

Bad images, one policy for every source (and the writer's image folders): an image whose item
cannot be encoded is named (where: reason) and skipped, the spec counting only what was
written, or refused with `strict=True`, which also removes everything the run wrote. The
unreadable images of a source are listed in `conversion_report.txt`. The default is the
official ImageNet and MSCOCO rule (`skip_on_error`, images that cannot be opened are skipped),
here reported instead of logged; the official converter crashes on the other sources, which
`strict=True` reproduces without leaving half a source behind. Records the official rules leave
out once the image is seen (an item's `plan.LeftOut`, e.g. an empty MSCOCO box) are counted
in the report's `skipped` beside the plan's own skipped files, never refused.
"""

import concurrent.futures
import functools
import json
import multiprocessing
import os
import pathlib
import queue as queue_lib
import re
import shutil
import sys
import time

import numpy as np

from ctx_tf import files
from ctx_tf.data.dataset_spec import DEFAULT_FILE_PATTERN as FILE_PATTERN
from ctx_tf.data.dataset_spec import SPEC_FILENAME, SPLIT_NAMES
from ctx_tf.data.reading import record_format
from ctx_tf.data.writing import spec_writer
from ctx_tf.data.writing.errors import SourceConversionError
from ctx_tf.data.writing.plan import LeftOut
from ctx_tf.data.writing.plan_spec import make_spec
from ctx_tf.data.writing.report import REPORT_FILENAME, ConversionReport, Progress

MANIFEST_FILENAME = "conversion_manifest.json"
# Temporary files of an interrupted run (files.atomic_write_with names them .<target>.*.tmp).
_LEFTOVER = re.compile(r"^\.(\d+\.tfrecords|dataset_spec\.json|conversion_manifest\.json|"
                       r"conversion_report\.txt)\..*\.tmp$")


# ------------------------------------------------------------------ one image, one class


class UnreadableImageError(SourceConversionError):
    """An image that cannot be read, met with `strict=True`."""


def write_class(class_id, class_plan, out_dir, strict, report=None):
    """Writes one class file; returns (class_id, records written, [(where, reason)] of the
    unreadable images, [(where, reason)] of the records the official rules leave out)."""
    unreadable, left_out = [], []
    state = {"pending": 0, "last": time.monotonic()}

    def examples():
        for item in class_plan.images():
            try:
                data = item.encode()
            except LeftOut as e:
                left_out.append((str(item.where), str(e)))
                continue
            except SourceConversionError:
                raise
            except Exception as e:  # pylint: disable=broad-except  # decoders raise many types
                reason = f"{type(e).__name__}: {e}"
                if strict:
                    raise UnreadableImageError(
                        f"{item.where}: unreadable image ({reason}); refused with "
                        "--strict") from e
                unreadable.append((str(item.where), reason))
                continue
            yield record_format.encode_example(data, class_id)
            if report is not None:
                state["pending"] += 1
                if time.monotonic() - state["last"] > 0.5:
                    report(state["pending"])
                    state["pending"], state["last"] = 0, time.monotonic()

    counted = [0]

    def counting():
        for example in examples():
            counted[0] += 1
            yield example

    record_format.write_tfrecord(os.path.join(out_dir, FILE_PATTERN.format(class_id)), counting())
    if report is not None and state["pending"]:
        report(state["pending"])
    return class_id, counted[0], unreadable, left_out


_WORKER_QUEUE = None


def _init_worker(progress_queue):
    global _WORKER_QUEUE  # pylint: disable=global-statement
    _WORKER_QUEUE = progress_queue


def _write_class_in_worker(class_id, class_plan, out_dir, strict):
    return write_class(class_id, class_plan, out_dir, strict, _WORKER_QUEUE.put)


# ------------------------------------------------------------------ the run


def _fingerprint(plan):
    return {"source": plan.name, "class_names": [c.name for c in plan.classes],
            "num_images": [c.num_images for c in plan.classes]}


def _read_manifest(out):
    path = out / MANIFEST_FILENAME
    if not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None  # a manifest that does not parse resumes nothing


def _first_missing(path):
    """The topmost folder of `path` that does not exist yet (None if `path` exists)."""
    path = pathlib.Path(os.path.abspath(path))
    missing = None
    while not path.exists():
        missing, path = path, path.parent
    return missing


def _clear(out):
    for entry in out.iterdir():
        name = entry.name
        if (name in (SPEC_FILENAME, MANIFEST_FILENAME, REPORT_FILENAME)
                or name.endswith(".tfrecords") or _LEFTOVER.match(name)):
            entry.unlink()


def _prepare(plan, out, overwrite):
    """Checks the output folder; returns the manifest entries of an earlier run to resume."""
    if out.exists() and not out.is_dir():
        raise SourceConversionError(f"{out}: exists and is not a folder")
    if not out.is_dir():
        return {}
    if overwrite:
        _clear(out)
        return {}
    manifest = _read_manifest(out)
    if manifest is None:
        if any(out.iterdir()):
            raise SourceConversionError(
                f"{out}: folder exists, is not empty and holds no {MANIFEST_FILENAME} of an "
                "interrupted conversion; pass --overwrite to replace it")
        return {}
    if {k: manifest.get(k) for k in _fingerprint(plan)} != _fingerprint(plan):
        raise SourceConversionError(
            f"{out / MANIFEST_FILENAME}: an earlier conversion of other raw data or classes; "
            "pass --overwrite to start afresh")
    for entry in out.iterdir():
        if _LEFTOVER.match(entry.name):  # the half-written file of a killed run
            entry.unlink()
    return dict(manifest.get("classes", {}))


def _run(tasks, out_dir, strict, workers, on_images, on_class):
    """Writes `tasks` ([(class_id, ClassPlan)]); calls on_class(result) as each finishes."""
    if workers <= 1 or len(tasks) <= 1:
        for class_id, class_plan in tasks:
            on_class(write_class(class_id, class_plan, out_dir, strict, on_images))
        return
    context = multiprocessing.get_context("spawn")  # TensorFlow and fork do not mix
    progress_queue = context.Queue()
    executor = concurrent.futures.ProcessPoolExecutor(
        min(workers, len(tasks)), mp_context=context, initializer=_init_worker,
        initargs=(progress_queue,))

    def drain():
        try:
            while True:
                on_images(progress_queue.get_nowait())
        except queue_lib.Empty:
            pass

    try:
        pending = {executor.submit(_write_class_in_worker, i, c, out_dir, strict)
                   for i, c in tasks}
        while pending:
            done, pending = concurrent.futures.wait(
                pending, timeout=0.5, return_when=concurrent.futures.FIRST_COMPLETED)
            drain()
            for future in done:
                on_class(future.result())
        drain()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        progress_queue.close()


def convert(plan, records_root, workers=1, strict=False, overwrite=False, class_ids=None,
            spec_path=None, log=None, progress_every=5.0) -> ConversionReport:
    """Converts `plan` to `<records_root>/<plan.name>/` (see the module docstring).

    workers: processes writing classes (None: all cores).
    class_ids: convert only these classes (a slice keeping the official ids; no spec).
    spec_path: the spec's `path` field (default `os.path.join(records_root, plan.name)`).
    log: called with each line to print (default: stdout).
    """
    start = time.monotonic()
    log = log or functools.partial(print, flush=True, file=sys.stdout)
    workers = (os.cpu_count() or 1) if workers is None else max(int(workers), 1)
    out = pathlib.Path(records_root) / plan.name
    selected = _selected_classes(plan, class_ids)
    created = _first_missing(out)
    done = _prepare(plan, out, overwrite)
    kept, todo = _to_write(plan, out, selected, done)
    out.mkdir(parents=True, exist_ok=True)
    if todo and (out / SPEC_FILENAME).exists():
        (out / SPEC_FILENAME).unlink()  # records are about to change
    manifest = _Manifest(out, plan, done)
    total = sum(plan.classes[i].num_images or 0 for i in todo)
    known = all(plan.classes[i].num_images is not None for i in todo)
    log(f"converting {plan.name} into {out}: {len(selected)} classes, "
        f"{len(kept)} already complete, {len(todo)} to write"
        + (f" ({total} images)" if known else "") + f" with {min(workers, max(len(todo), 1))} "
        "worker(s)")
    progress = Progress(plan.name, total if known else None, len(todo), log, progress_every)
    _write_classes(plan, todo, out, strict, workers, manifest, progress, created, done)
    if todo:
        progress.print()
    counts, unreadable, left_out = _outcome(plan, manifest.classes, selected, out)
    spec = None
    if class_ids is None:
        spec = _finish_source(plan, out, records_root, spec_path, counts, unreadable)
    return _report(plan, out, selected, counts, len(todo), len(kept),
                   tuple(plan.skipped) + left_out, unreadable, time.monotonic() - start, spec)


def _selected_classes(plan, class_ids):
    """The class ids to convert, sorted: all, or `class_ids` (checked against the plan)."""
    num_classes = len(plan.classes)
    if class_ids is None:
        return list(range(num_classes))
    selected = sorted({int(i) for i in class_ids})
    bad = [i for i in selected if not 0 <= i < num_classes]
    if bad:
        raise SourceConversionError(
            f"{plan.name}: class id {bad[0]} out of range [0, {num_classes})")
    return selected


def _to_write(plan, out, selected, done):
    """(the manifest entries of the selected classes whose files an earlier run completed, the
    selected class ids still to write, largest first so no worker is left with a big one at
    the end)."""
    kept = {str(i): done[str(i)] for i in selected
            if str(i) in done and record_format.count_records(out / FILE_PATTERN.format(i))
            == done[str(i)]["records"]}
    todo = [i for i in selected if str(i) not in kept]
    todo.sort(key=lambda i: (-(plan.classes[i].num_images or 0), i))
    return kept, todo


class _Manifest:
    """`conversion_manifest.json` of a run: the plan's fingerprint and every finished class."""

    def __init__(self, out, plan, done):
        self.path = out / MANIFEST_FILENAME
        self.data = dict(_fingerprint(plan), classes=dict(done))
        self.last_save = time.monotonic()

    @property
    def classes(self):
        return self.data["classes"]

    def save(self):
        files.write_json(self.path, self.data)
        self.last_save = time.monotonic()

    def save_every(self, seconds):
        if time.monotonic() - self.last_save > seconds:
            self.save()


def _write_classes(plan, todo, out, strict, workers, manifest, progress, created, done):
    """Writes the classes `todo`, recording each finished one in the manifest. An unreadable
    image with `strict` removes what this run wrote (all of `created`, the topmost folder the
    run created, if any) and is raised."""
    written = []

    def on_class(result):
        class_id, count, unreadable, left_out = result
        written.append(class_id)
        manifest.classes[str(class_id)] = {"records": count, "unreadable": unreadable,
                                           "left_out": left_out}
        progress.add(classes=1)
        manifest.save_every(2.0)

    manifest.save()  # from now on the folder is an interrupted conversion, resumable
    try:
        _run([(i, plan.classes[i]) for i in todo], str(out), strict, workers, progress.add,
             on_class)
    except UnreadableImageError:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        else:  # an earlier run's classes stay; this run's go
            for class_id in written:
                (out / FILE_PATTERN.format(class_id)).unlink(missing_ok=True)
                manifest.classes[str(class_id)] = done.get(str(class_id))
            manifest.data["classes"] = {k: v for k, v in manifest.classes.items() if v}
            manifest.save()
        raise
    finally:
        if out.is_dir():
            manifest.save()


def _outcome(plan, entries, selected, out):
    """(records written per class id, None where not converted; the unreadable images and the
    records left out of the selected classes). A class with no readable image is refused."""
    counts = [entries[str(i)]["records"] if str(i) in entries else None
              for i in range(len(plan.classes))]
    unreadable = tuple(tuple(u) for i in selected for u in entries[str(i)]["unreadable"])
    left_out = tuple(tuple(u) for i in selected for u in entries[str(i)].get("left_out", ()))
    empty = [i for i in selected if counts[i] == 0]
    if empty:
        raise SourceConversionError(
            f"{plan.name}: class {empty[0]} ({plan.classes[empty[0]].name}) has no readable "
            f"image (see {out / MANIFEST_FILENAME}); no dataset_spec.json was written")
    return counts, unreadable, left_out


def _finish_source(plan, out, records_root, spec_path, counts, unreadable):
    """Removes the record files of an earlier conversion with more classes, writes (or removes)
    the report of unreadable images and, last, the spec; returns the spec."""
    path = os.path.join(str(records_root), plan.name) if spec_path is None else spec_path
    spec = make_spec(plan, counts, str(path))
    expected = {FILE_PATTERN.format(i) for i in range(len(plan.classes))}
    for entry in out.iterdir():
        if entry.name.endswith(".tfrecords") and entry.name not in expected:
            entry.unlink()
    if unreadable:
        files.atomic_write(out / REPORT_FILENAME, "".join(f"{w}: {r}\n" for w, r in unreadable))
    elif (out / REPORT_FILENAME).exists():
        (out / REPORT_FILENAME).unlink()
    spec_writer.write_dataset_spec(out, spec)
    return spec


def _report(plan, out, selected, counts, num_written, num_kept, skipped, unreadable, seconds,
            spec):
    """The `ConversionReport` of the selected classes, counted per split."""
    firsts = np.cumsum([0] + [plan.classes_per_split.get(s, 0) for s in SPLIT_NAMES])
    split_of = {i: SPLIT_NAMES[int(np.searchsorted(firsts, i, side="right")) - 1]
                for i in selected}
    return ConversionReport(
        str(out), plan.name,
        {s: sum(1 for i in selected if split_of[i] == s) for s in SPLIT_NAMES},
        {s: sum(counts[i] for i in selected if split_of[i] == s) for s in SPLIT_NAMES}, spec,
        classes_written=num_written, classes_resumed=num_kept, skipped=skipped,
        unreadable=unreadable, seconds=seconds)
