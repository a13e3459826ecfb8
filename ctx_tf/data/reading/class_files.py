"""One class file read as the official shuffled, repeated class stream, by record offset.

A tf.data shuffle's output order depends only on its seed, buffer size and input length,
never on the elements. So `index_epochs` gives each epoch's order of record indices as
`range(n).shuffle(...)` with the class's seed would -- the permutation the official per-class
stream applies to the records -- computed without TensorFlow by `shuffle_order.ShuffleOrders`
(verified against TensorFlow by tests). `ClassRecords` then reads exactly the records it is
asked for: the first time a class is used its file's record offsets are read from the record
headers (`RecordIndex`, 8 bytes a record), and each record is read by offset through the
process's bounded pool of open files (`open_files.OPEN_FILES`). Nothing is read ahead or kept,
so memory and open files do not grow with the classes a run touches.

Reading runs no TensorFlow for local files (remote ones, gs://..., go through
`tf.io.gfile.GFile`). A damaged or miscounted file raises `RecordsError` naming the file, its
source and the `--check` command; a file the operating system refuses (missing, permissions,
too many open files, I/O error) raises `RecordFileError`, which says what it is.
"""

import numpy as np
import tensorflow as tf

from ctx_tf.data.reading.errors import RecordsError, file_error, records_error
from ctx_tf.data.reading.open_files import OPEN_FILES
from ctx_tf.data.reading.record_format import (FRAMING_BYTES, HEADER_BYTES, TFRecordDamage,
                                               record_length, unframe)
from ctx_tf.data.reading.shuffle_order import ShuffleOrders


def effective_num_images(num_images, num_to_take):
    """Images a class stream yields per epoch when limited to `num_to_take` (-1/None: all)."""
    if num_to_take is None or num_to_take < 0:
        return num_images
    return min(num_images, num_to_take)


class RecordIndex:
    """Where each of a class file's first `num_images` records starts and ends.

    Built from the record headers alone (payloads are skipped). With `exact`, the file must
    hold exactly `num_images` records; otherwise it may hold more (only the first are used).
    """

    def __init__(self, dataset_spec, class_id, num_images, exact, files=OPEN_FILES):
        self.dataset_spec = dataset_spec
        self.class_id = class_id
        self.path = dataset_spec.record_path(class_id)
        self.files = files
        self.offsets = self._scan(num_images, exact)  # int64 [num_images + 1]

    def fail(self, problem):
        raise records_error(self.dataset_spec, self.path, self.class_id, problem) from None

    def read(self, offset, size):
        try:
            return self.files.read(self.path, offset, size)
        except (OSError, tf.errors.OpError) as e:
            self.files.forget(self.path)
            raise file_error(self.dataset_spec, self.path, self.class_id, e) from None

    def _header(self, offset, size, count):
        """The payload length of the record at `offset`, or None at the end of the file."""
        if offset == size:
            return None
        header = self.read(offset, HEADER_BYTES)
        if len(header) < HEADER_BYTES:
            self.fail(f"damaged after {count} readable records (truncated record header at "
                      f"byte {offset})")
        length = record_length(header)
        if length is None:
            self.fail(f"damaged after {count} readable records (corrupt length checksum at "
                      f"byte {offset})")
        if offset + FRAMING_BYTES + length > size:
            self.fail(f"damaged after {count} readable records (truncated record at byte "
                      f"{offset})")
        return length

    def _scan(self, num_images, exact):
        try:
            size = self.files.size(self.path)
        except (OSError, tf.errors.OpError) as e:
            self.files.forget(self.path)
            raise file_error(self.dataset_spec, self.path, self.class_id, e) from None
        offsets = np.empty(num_images + 1, np.int64)
        offset = 0
        for count in range(num_images):
            offsets[count] = offset
            length = self._header(offset, size, count)
            if length is None:
                self.fail(f"holds {count} records but dataset_spec.json says {num_images}")
            offset += FRAMING_BYTES + length
        offsets[num_images] = offset
        if exact and self._header(offset, size, num_images) is not None:
            self.fail(f"holds more than the {num_images} records dataset_spec.json says")
        return offsets

    def record(self, index):
        """The payload of record `index` (checksums verified)."""
        start, end = int(self.offsets[index]), int(self.offsets[index + 1])
        try:
            return unframe(self.read(start, end - start), self.path, start)
        except TFRecordDamage as e:
            self.fail(f"record {index} is damaged ({e.problem})")


class ClassIndices:
    """The `RecordIndex` of each class of a list, built the first time it is asked for and
    kept (8 bytes a record), shared by the episode and batch readers of one source."""

    def __init__(self, dataset_spec, class_ids, num_to_take):
        self.dataset_spec = dataset_spec
        self.class_ids = list(class_ids)
        self.num_to_take = -1 if num_to_take is None else num_to_take
        self._indices = {}

    def num_images(self, i):
        """Records per epoch of relative class `i`."""
        return effective_num_images(
            self.dataset_spec.get_total_images_per_class(self.class_ids[i]), self.num_to_take)

    def __getitem__(self, i):
        index = self._indices.get(i)
        if index is None:
            class_id = self.class_ids[i]
            spec_count = self.dataset_spec.get_total_images_per_class(class_id)
            # A file must hold exactly its spec count unless only its first records are taken.
            exact = self.num_to_take < 0 or self.num_to_take >= spec_count
            index = RecordIndex(self.dataset_spec, class_id, self.num_images(i), exact)
            self._indices[i] = index
        return index


class ClassRecords:
    """One class's stream: `take(count)` -> `[(record_index, record)]`.

    The same records, in the same order, as the official per-class stream (`take` ->
    shuffle -> `repeat()`) with the same arguments (see the module docstring). The epoch
    orders come from `index_epochs` (a `ShuffleOrders`, or None: file order) and the offsets
    from `record_index` (a `RecordIndex`, or a function building it on first use), both
    shared by all readers of the class, so that a second iteration of a pipeline continues
    the reshuffling without re-reading the headers.
    """

    def __init__(self, dataset_spec, class_id, num_to_take, index_epochs, record_index=None):
        self.dataset_spec = dataset_spec
        self.class_id = class_id
        spec_count = dataset_spec.get_total_images_per_class(class_id)
        self.num_images = effective_num_images(spec_count, num_to_take)
        if record_index is None:
            # A file must hold exactly its spec count unless only its first records are taken.
            exact = num_to_take is None or num_to_take < 0 or num_to_take >= spec_count
            record_index = lambda: RecordIndex(dataset_spec, class_id, self.num_images, exact)
        self._record_index = record_index
        self._epochs = None if index_epochs is None else iter(index_epochs)
        self._order, self._position = np.zeros(0, np.int32), 0

    def _next_epoch(self):
        if self._epochs is None:
            self._order = np.arange(self.num_images, dtype=np.int32)
        else:
            self._order = np.asarray(next(self._epochs), dtype=np.int32)
        self._position = 0

    def _index(self):
        if callable(self._record_index):
            self._record_index = self._record_index()
        return self._record_index

    def take(self, count, read=True):
        """The next `count` elements; with `read=False` the records are b'' (not read)."""
        out = []
        for _ in range(count):
            if self._position == len(self._order):
                self._next_epoch()
            index = int(self._order[self._position])
            self._position += 1
            out.append((index, self._index().record(index) if read else b""))
        return out


def current_global_seed():
    """TensorFlow's global seed in force now, as its seeded ops see it (87654321 if unset).

    Pass it to `index_epochs` when the tf.data pipeline it stands for would be built."""
    return tf.compat.v1.random.get_seed(0)[0]


def index_epochs(num_images, shuffle_buffer_size, shuffle_seed, global_seed):
    """Shuffled epochs of `range(num_images)`, one list each (None: no shuffle).

    The shuffle is the one the official per-class stream applies to the records, with the
    same seed, as built under TensorFlow global seed `global_seed` (see
    `current_global_seed`).
    """
    buffer_size = min(num_images, shuffle_buffer_size or 0)
    if buffer_size <= 1:
        return None
    return ShuffleOrders(num_images, buffer_size, shuffle_seed, global_seed)


def find_damaged_file(dataset_spec, split):
    """The `RecordsError` of the split's first damaged or miscounted class file, or None.

    Reads every class file of the split once (used only after reading has failed).
    """
    for class_id in dataset_spec.get_classes(split):
        records = ClassRecords(dataset_spec, class_id, -1, None)
        try:
            records.take(records.num_images)
        except RecordsError as e:
            return e
    return None
