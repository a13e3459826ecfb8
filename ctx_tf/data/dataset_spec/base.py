"""What every Meta-Dataset spec type shares: splits, file naming, errors, id-range checks."""

import enum
import functools
import os
import posixpath

from ctx_tf.errors import UserError

SPEC_FILENAME = "dataset_spec.json"
# The only file pattern the official converter writes and the official reader can read.
DEFAULT_FILE_PATTERN = "{}.tfrecords"
# Accepted by the official loader (per-pool files) but not supported by any reader.
POOL_FILE_PATTERN = "{}_{}.tfrecords"


class Split(enum.Enum):
    """The three class splits of a source; values are the official enum values."""

    TRAIN = 0
    VALID = 1
    TEST = 2


# ("TRAIN", "VALID", "TEST"): the splits' names as the spec files spell them, in id order.
SPLIT_NAMES = tuple(split.name for split in Split)


class DatasetSpecError(UserError, ValueError):
    """A `dataset_spec.json` that is missing, malformed or inconsistent."""


def as_split(split):
    if isinstance(split, Split):
        return split
    if isinstance(split, str):
        try:
            return Split[split.upper()]
        except KeyError:
            pass
    raise ValueError(f"split must be one of {list(SPLIT_NAMES)} (or a Split), got {split!r}")


class SpecBase:
    """Shared behaviour of the spec types: file naming, class name lookup, per-split ranges."""

    def __init__(self, name, class_names, path, file_pattern, source):
        self.name = name
        self.class_names = class_names
        self.path = path
        self.file_pattern = file_pattern
        self._source = source  # what error messages name: the file the spec came from

    def _error(self, message):
        return DatasetSpecError(f"{self._source}: {message}")

    @property
    def num_classes(self):
        return len(self.class_names)

    @functools.cached_property
    def class_names_to_ids(self):
        return {name: class_id for class_id, name in self.class_names.items()}

    def get_classes(self, split):
        """The absolute class ids of `split`, a contiguous `range`."""
        split = as_split(split)
        offset = sum(self.classes_per_split[s] for s in Split if s.value < split.value)
        return range(offset, offset + self.classes_per_split[split])

    def split_of_class(self, class_id):
        for split in Split:
            if class_id in self.get_classes(split):
                return split
        raise ValueError(f"{self.name}: class id {class_id} is not in [0, {self.num_classes})")

    def get_total_images_per_class(self, class_id, pool=None):
        """Official name of `num_images`."""
        if pool is not None:
            raise ValueError(f"{self.name}: example-level pools are not supported (pool={pool!r})")
        return self.num_images(class_id)

    def record_path(self, class_id):
        """Path of the TFRecord file of absolute class `class_id`."""
        if self.file_pattern != DEFAULT_FILE_PATTERN:
            raise ValueError(
                f"{self._source}: file_pattern {self.file_pattern!r} is not supported; only "
                f"{DEFAULT_FILE_PATTERN!r} (one file per class) is read"
            )
        return join_path(self.path, self.file_pattern.format(class_id))

    def __repr__(self):
        counts = ", ".join(f"{s.name} {self.classes_per_split[s]}" for s in Split)
        return f"{type(self).__name__}(name={self.name!r}, classes: {counts}, path={self.path!r})"


def join_path(directory, filename):
    if "://" in directory:
        return posixpath.join(directory, filename)
    return os.path.join(directory, filename)


def check_contiguous(spec, field, mapping, expected_len, what):
    """Keys of `mapping` must be exactly 0..expected_len-1; counts must be ints >= 0."""
    keys = set(mapping)
    if keys != set(range(expected_len)):
        missing = sorted(set(range(expected_len)) - keys)
        extra = sorted(keys - set(range(expected_len)))
        detail = []
        if missing:
            detail.append(f"missing id(s) {missing[:5]}")
        if extra:
            detail.append(f"unexpected id(s) {extra[:5]}")
        raise spec._error(
            f"{field} has {len(mapping)} entries but {what} is {expected_len} "
            f"({'; '.join(detail)})"
        )
    if field in ("images_per_class", "classes_per_superclass"):
        for key, value in mapping.items():
            if isinstance(value, dict):
                raise spec._error(
                    f"{field}[{key}] is a per-pool dict; example-level pools are not supported"
                )
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise spec._error(f"{field}[{key}] must be a non-negative integer, got {value!r}")
