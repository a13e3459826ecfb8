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

Bad images: an image the encoder cannot read is named (path: reason) and skipped, the spec
counting only what was written, or refused with `strict=True`, which also removes everything
the run wrote. The unreadable images of a source are listed in `conversion_report.txt`.
"""

import concurrent.futures
import dataclasses
import functools
import io
import json
import multiprocessing
import os
import pathlib
import queue as queue_lib
import re
import shutil
import sys
import time
from typing import Dict, Optional, Tuple

import numpy as np
from PIL import Image

from ctx_tf import files
from ctx_tf.data import image_encoding, records, spec_writer
from ctx_tf.data.dataset_spec import DEFAULT_FILE_PATTERN as FILE_PATTERN
from ctx_tf.data.dataset_spec import SPEC_FILENAME
from ctx_tf.data.sources.common import SourceConversionError, count_records
from ctx_tf.data.sources.plan import ImageRef

MANIFEST_FILENAME = "conversion_manifest.json"
REPORT_FILENAME = "conversion_report.txt"
SPLITS = ("TRAIN", "VALID", "TEST")
# Unreadable images named in the closing summary (all of them go to REPORT_FILENAME).
SHOWN_UNREADABLE = 10
# Temporary files of an interrupted run (files.atomic_write_with names them .<target>.*.tmp).
_LEFTOVER = re.compile(r"^\.(\d+\.tfrecords|dataset_spec\.json|conversion_manifest\.json|"
                       r"conversion_report\.txt)\..*\.tmp$")


# ------------------------------------------------------------------ one image, one class


def describe_image(item) -> str:
    """Where an image comes from, for messages: a path, `path[row N]`, or `item.where`."""
    if isinstance(item, ImageRef):
        return item.path if item.row is None else f"{item.path}[row {item.row}]"
    return str(item.where)


@functools.lru_cache(maxsize=4)
def _bitmaps(path):
    return np.load(path, mmap_mode="r")  # rows are read on demand, one class file at a time


def _check_complete_jpeg(data):
    """Decodes a JPEG at 1/8 scale: kept byte for byte, a truncated file would only fail
    when training reads it; the reduced decode still reads every byte of the scan."""
    if data[:2] == b"\xff\xd8":
        image = Image.open(io.BytesIO(data))
        image.draft(image.mode, (1, 1))
        image.load()


def encode_image(item) -> bytes:
    """The record image of one plan item: an `ImageRef`, or an object of a source module
    with `encode() -> bytes` and `where` (e.g. an image inside a zip file)."""
    if not isinstance(item, ImageRef):
        return item.encode()
    if item.row is not None:
        return image_encoding.encode_bitmap_row(_bitmaps(item.path)[item.row])
    data = image_encoding.encode_image_file(item.path, crop=item.crop, invert=item.invert)
    _check_complete_jpeg(data)
    return data


class UnreadableImageError(SourceConversionError):
    """An image that cannot be read, met with `strict=True`."""


def write_class(class_id, class_plan, out_dir, strict, report=None):
    """Writes one class file; returns (class_id, records written, [(where, reason)])."""
    unreadable = []
    state = {"pending": 0, "last": time.monotonic()}

    def examples():
        for item in class_plan.images():
            try:
                data = encode_image(item)
            except SourceConversionError:
                raise
            except Exception as e:  # pylint: disable=broad-except  # decoders raise many types
                reason = f"{type(e).__name__}: {e}"
                if strict:
                    raise UnreadableImageError(
                        f"{describe_image(item)}: unreadable image ({reason}); refused with "
                        "--strict") from e
                unreadable.append((describe_image(item), reason))
                continue
            yield records.encode_example(data, class_id)
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

    records.write_tfrecord(os.path.join(out_dir, FILE_PATTERN.format(class_id)), counting())
    if report is not None and state["pending"]:
        report(state["pending"])
    return class_id, counted[0], unreadable


_WORKER_QUEUE = None


def _init_worker(progress_queue):
    global _WORKER_QUEUE  # pylint: disable=global-statement
    _WORKER_QUEUE = progress_queue


def _write_class_in_worker(class_id, class_plan, out_dir, strict):
    return write_class(class_id, class_plan, out_dir, strict, _WORKER_QUEUE.put)


# ------------------------------------------------------------------ progress and report


class _Progress:
    """Prints one line every `every` seconds: images, images/s, ETA, classes."""

    def __init__(self, name, total_images, total_classes, log, every):
        self.name, self.total, self.classes_total = name, total_images, total_classes
        self.log, self.every = log, every
        self.images = self.classes = 0
        self.start = self.last = time.monotonic()

    def add(self, images=0, classes=0):
        self.images += images
        self.classes += classes
        if time.monotonic() - self.last >= self.every:
            self.print()

    def print(self):
        self.last = now = time.monotonic()
        rate = self.images / max(now - self.start, 1e-9)
        done = f"{self.images}" + (f"/{self.total} images ({100 * self.images / self.total:.1f}%)"
                                   if self.total else " images")
        eta = "?"
        if self.total and rate > 0:
            eta = format_duration(max(self.total - self.images, 0) / rate)
        elif self.classes:
            eta = format_duration((now - self.start) * (self.classes_total / self.classes - 1))
        self.log(f"{self.name}: {done}, {rate:.1f} images/s, ETA {eta}, "
                 f"classes {self.classes}/{self.classes_total}")


def format_duration(seconds):
    """`h:mm:ss` of a number of seconds."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclasses.dataclass
class ConversionReport:
    """What a conversion wrote. Counts cover the converted classes (all, or the slice)."""

    directory: str
    name: str
    classes_per_split: Dict[str, int]
    images_per_split: Dict[str, int]
    classes_written: int
    classes_resumed: int
    skipped: Tuple[Tuple[str, str], ...]
    unreadable: Tuple[Tuple[str, str], ...]
    seconds: float
    spec: Optional[dict]  # None for a slice: no spec is written

    @property
    def num_classes(self):
        return sum(self.classes_per_split.values())

    @property
    def num_images(self):
        return sum(self.images_per_split.values())

    @property
    def superclasses_per_split(self):
        return None if self.spec is None else self.spec.get("superclasses_per_split")

    def summary(self) -> str:
        what = "source" if self.spec is not None else "slice (no dataset_spec.json) of"
        lines = [f"wrote {what} {self.name!r} to {self.directory}: {self.num_classes} classes, "
                 f"{self.num_images} images ({self.classes_written} classes written, "
                 f"{self.classes_resumed} kept from an earlier run) in "
                 f"{format_duration(self.seconds)}"]
        lines += [f"  {s}: {self.classes_per_split[s]} classes, {self.images_per_split[s]} "
                  "images" for s in SPLITS]
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} file(s) the official converter also "
                         "leaves out (not images, duplicates)")
        if self.unreadable:
            lines.append(f"  skipped {len(self.unreadable)} unreadable image(s), not counted "
                         f"in the spec; all in {os.path.join(self.directory, REPORT_FILENAME)}:")
            lines += [f"    {w}: {r}" for w, r in self.unreadable[:SHOWN_UNREADABLE]]
            if len(self.unreadable) > SHOWN_UNREADABLE:
                lines.append(f"    ... and {len(self.unreadable) - SHOWN_UNREADABLE} more")
        return "\n".join(lines)


# ------------------------------------------------------------------ the spec


def make_spec(plan, images_per_class, path):
    """The official spec dict of `plan` with the record counts actually written."""
    class_names = [c.name for c in plan.classes]
    fields = dict(plan.spec_fields)
    if plan.spec_type == "flat":
        return spec_writer.make_dataset_spec(
            plan.name, path, class_names, images_per_class,
            [plan.classes_per_split.get(s, 0) for s in SPLITS])
    if plan.spec_type == "bilevel":
        return spec_writer.make_bilevel_dataset_spec(
            plan.name, path, fields["superclass_names"],
            [fields["superclasses_per_split"].get(s, 0) for s in SPLITS],
            fields["classes_per_superclass"], class_names, images_per_class)
    subgraphs = fields.pop("split_subgraphs")
    return spec_writer.make_hierarchical_dataset_spec(
        plan.name, path, subgraphs, _node_counts(subgraphs, class_names, images_per_class),
        class_names)


def _node_counts(split_subgraphs, class_names, images_per_class):
    """split -> {wn_id: images} for every node: a leaf's records, or the sum over the
    distinct leaves an internal node spans (the official hierarchical counts)."""
    leaf_count = dict(zip(class_names, images_per_class))
    out = {}
    for split, nodes in split_subgraphs.items():
        nodes = list(nodes.values()) if isinstance(nodes, dict) else list(nodes)
        children = {_node_field(n, "wn_id"): list(_node_field(n, "children_ids"))
                    for n in nodes}
        spans = {}

        def span(wn_id, children=children, spans=spans):
            if wn_id not in spans:
                kids = children.get(wn_id, [])
                spans[wn_id] = (frozenset([wn_id]) if not kids else
                                frozenset().union(*(span(k) for k in kids)))
            return spans[wn_id]

        out[getattr(split, "name", split)] = {
            wn_id: sum(leaf_count[leaf] for leaf in span(wn_id)) for wn_id in children}
    return out


def _node_field(node, key):
    return node[key] if isinstance(node, dict) else getattr(node, key)


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
    num_classes = len(plan.classes)
    if class_ids is None:
        selected = list(range(num_classes))
    else:
        selected = sorted({int(i) for i in class_ids})
        bad = [i for i in selected if not 0 <= i < num_classes]
        if bad:
            raise SourceConversionError(
                f"{plan.name}: class id {bad[0]} out of range [0, {num_classes})")
    created = _first_missing(out)
    done = _prepare(plan, out, overwrite)
    kept = {str(i): done[str(i)] for i in selected
            if str(i) in done and count_records(out / FILE_PATTERN.format(i))
            == done[str(i)]["records"]}
    todo = [i for i in selected if str(i) not in kept]
    # Largest classes first, so no worker is left with a big one at the end.
    todo.sort(key=lambda i: (-(plan.classes[i].num_images or 0), i))
    out.mkdir(parents=True, exist_ok=True)
    if todo and (out / SPEC_FILENAME).exists():
        (out / SPEC_FILENAME).unlink()  # records are about to change
    manifest = dict(_fingerprint(plan), classes=dict(done))
    manifest["classes"].update(kept)
    total = sum(plan.classes[i].num_images or 0 for i in todo)
    known = all(plan.classes[i].num_images is not None for i in todo)
    log(f"converting {plan.name} into {out}: {len(selected)} classes, "
        f"{len(kept)} already complete, {len(todo)} to write"
        + (f" ({total} images)" if known else "") + f" with {min(workers, max(len(todo), 1))} "
        "worker(s)")
    progress = _Progress(plan.name, total if known else None, len(todo), log, progress_every)
    written = []
    last_save = [time.monotonic()]

    def save_manifest():
        files.write_json(out / MANIFEST_FILENAME, manifest)
        last_save[0] = time.monotonic()

    def on_class(result):
        class_id, count, unreadable = result
        written.append(class_id)
        manifest["classes"][str(class_id)] = {"records": count, "unreadable": unreadable}
        progress.add(classes=1)
        if time.monotonic() - last_save[0] > 2.0:
            save_manifest()

    save_manifest()  # from now on the folder is an interrupted conversion, resumable
    try:
        _run([(i, plan.classes[i]) for i in todo], str(out), strict, workers,
             progress.add, on_class)
    except UnreadableImageError:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        else:  # an earlier run's classes stay; this run's go
            for class_id in written:
                (out / FILE_PATTERN.format(class_id)).unlink(missing_ok=True)
                manifest["classes"][str(class_id)] = done.get(str(class_id))
            manifest["classes"] = {k: v for k, v in manifest["classes"].items() if v}
            save_manifest()
        raise
    finally:
        if out.is_dir():
            save_manifest()
    if todo:
        progress.print()
    entries = manifest["classes"]
    counts = [entries[str(i)]["records"] if str(i) in entries else None
              for i in range(num_classes)]
    unreadable = tuple(tuple(u) for i in selected for u in entries[str(i)]["unreadable"])
    empty = [i for i in selected if counts[i] == 0]
    if empty:
        raise SourceConversionError(
            f"{plan.name}: class {empty[0]} ({plan.classes[empty[0]].name}) has no readable "
            f"image (see {out / MANIFEST_FILENAME}); no dataset_spec.json was written")
    spec = None
    if class_ids is None:
        path = os.path.join(str(records_root), plan.name) if spec_path is None else spec_path
        spec = make_spec(plan, counts, str(path))
        for entry in out.iterdir():  # files of an earlier conversion with more classes
            if entry.name.endswith(".tfrecords") and entry.name not in {
                    FILE_PATTERN.format(i) for i in range(num_classes)}:
                entry.unlink()
        if unreadable:
            files.atomic_write(out / REPORT_FILENAME,
                               "".join(f"{w}: {r}\n" for w, r in unreadable))
        elif (out / REPORT_FILENAME).exists():
            (out / REPORT_FILENAME).unlink()
        spec_writer.write_dataset_spec(out, spec)
    firsts = np.cumsum([0] + [plan.classes_per_split.get(s, 0) for s in SPLITS])
    split_of = {i: SPLITS[int(np.searchsorted(firsts, i, side="right")) - 1] for i in selected}
    return ConversionReport(
        str(out), plan.name,
        {s: sum(1 for i in selected if split_of[i] == s) for s in SPLITS},
        {s: sum(counts[i] for i in selected if split_of[i] == s) for s in SPLITS},
        len(todo), len(kept), tuple(plan.skipped), unreadable,
        time.monotonic() - start, spec)
