"""What a conversion tells its user: the progress line while it runs and the closing report."""

import dataclasses
import os
import time
from typing import Dict, Optional, Tuple

from ctx_tf.data.dataset_spec import SPLIT_NAMES
from ctx_tf.progress import format_duration

REPORT_FILENAME = "conversion_report.txt"
# Unreadable images named in the closing summary (all of them go to REPORT_FILENAME).
SHOWN_UNREADABLE = 10


class Progress:
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


@dataclasses.dataclass
class SourceReport:
    """What a writer wrote of a source: its folder, name, counts per split and spec (None for
    a slice of a conversion: no spec is written)."""

    directory: str
    name: str
    classes_per_split: Dict[str, int]
    images_per_split: Dict[str, int]
    spec: Optional[dict]

    @property
    def num_classes(self):
        return sum(self.classes_per_split.values())

    @property
    def num_images(self):
        return sum(self.images_per_split.values())

    @property
    def superclasses_per_split(self):
        return None if self.spec is None else self.spec.get("superclasses_per_split")

    def split_lines(self):
        """One line per split: classes (in superclasses), images."""
        supers = self.superclasses_per_split
        return [f"  {s}: {self.classes_per_split[s]} classes"
                + (f" in {supers[s]} superclasses" if supers else "")
                + f", {self.images_per_split[s]} images" for s in SPLIT_NAMES]

    def summary(self) -> str:
        return "\n".join([f"wrote source {self.name!r} to {self.directory}: "
                          f"{self.num_classes} classes, {self.num_images} images"]
                         + self.split_lines())


@dataclasses.dataclass
class ConversionReport(SourceReport):
    """What a conversion wrote. Counts cover the converted classes (all, or the slice).

    skipped: `(where, reason)` of what the official rules leave out: raw files the plan drops
      (not images, duplicates) and records the items declined while converting (`LeftOut`).
    unreadable: `(where, reason)` of images that could not be read (skipped, not counted).
    """

    classes_written: int = 0
    classes_resumed: int = 0
    skipped: Tuple[Tuple[str, str], ...] = ()
    unreadable: Tuple[Tuple[str, str], ...] = ()
    seconds: float = 0.0

    def summary(self) -> str:
        what = "source" if self.spec is not None else "slice (no dataset_spec.json) of"
        lines = [f"wrote {what} {self.name!r} to {self.directory}: {self.num_classes} classes, "
                 f"{self.num_images} images ({self.classes_written} classes written, "
                 f"{self.classes_resumed} kept from an earlier run) in "
                 f"{format_duration(self.seconds)}"]
        lines += self.split_lines()
        if self.skipped:
            reasons = {}
            for _, reason in self.skipped:
                reasons[reason] = reasons.get(reason, 0) + 1
            lines.append(f"  left out {len(self.skipped)} file(s) or record(s) as the official "
                         "converter does:")
            lines += [f"    {n} x {reason}" for reason, n in sorted(reasons.items())]
        if self.unreadable:
            lines.append(f"  skipped {len(self.unreadable)} unreadable image(s), not counted "
                         f"in the spec; all in {os.path.join(self.directory, REPORT_FILENAME)}:")
            lines += [f"    {w}: {r}" for w, r in self.unreadable[:SHOWN_UNREADABLE]]
            if len(self.unreadable) > SHOWN_UNREADABLE:
                lines.append(f"    ... and {len(self.unreadable) - SHOWN_UNREADABLE} more")
        return "\n".join(lines)
