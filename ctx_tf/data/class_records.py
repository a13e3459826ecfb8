"""One class file read as the official shuffled, repeated class stream, in plain Python.

A tf.data shuffle's output order depends only on its seed, buffer size and input length,
never on the elements. So `index_epochs` gives each epoch's order of record indices as
`range(n).shuffle(...)` with the class's seed would -- the permutation `reader.class_stream`
applies to the records -- computed without TensorFlow by `shuffle_order.ShuffleOrders`
(verified against TensorFlow by tests). `ClassRecords` reads the file sequentially with
`records.read_tfrecord` (checksums verified), keeping records read ahead of their turn (at
most a shuffle buffer's worth). Reading runs no TensorFlow: local files are opened by
Python, remote ones (gs://...) through `tf.io.gfile.GFile`, a plain file object. Damaged
or miscounted files raise `RecordsError` naming the file, its source and the `--check`
command.
"""

import tensorflow as tf

from ctx_tf.data.records import TFRecordDamage, read_tfrecord
from ctx_tf.data.shuffle_order import ShuffleOrders
from ctx_tf.errors import UserError
from ctx_tf.files import is_remote


class ReaderError(UserError, ValueError):
    """Records that cannot be read as the dataset spec describes them."""


class RecordsError(ReaderError):
    """An empty, truncated, corrupt or miscounted class file (the message names it)."""


def check_hint(directory):
    """The advice ending every `RecordsError`."""
    return f"run `python -m ctx_tf.data.writer --check={directory}` for a full report"


def records_error(dataset_spec, path, class_id, problem):
    """A `RecordsError` naming the file, its class and source, and the `--check` command."""
    return RecordsError(f"{path} (class id {class_id} of source {dataset_spec.name!r}): "
                        f"{problem}; {check_hint(dataset_spec.path)}")


def effective_num_images(num_images, num_to_take):
    """Images a class stream yields per epoch when limited to `num_to_take` (-1/None: all)."""
    if num_to_take is None or num_to_take < 0:
        return num_images
    return min(num_images, num_to_take)


class ClassRecords:
    """One class's stream, read in Python: `take(count)` -> `[(record_index, record)]`.

    Same order as `class_stream` with the same arguments (see the module docstring). The
    epoch orders come from `index_epochs`, a `ShuffleOrders` shared by all readers of the
    class, so that a second iteration of a pipeline continues the reshuffling as
    `class_stream` does.
    """

    def __init__(self, dataset_spec, class_id, num_to_take, index_epochs):
        self.dataset_spec = dataset_spec
        self.class_id = class_id
        self.path = dataset_spec.record_path(class_id)
        spec_count = dataset_spec.get_total_images_per_class(class_id)
        self.num_images = effective_num_images(spec_count, num_to_take)
        # A file must hold exactly its spec count unless only its first records are taken.
        self._exact = num_to_take is None or num_to_take < 0 or num_to_take >= spec_count
        self._epochs = None if index_epochs is None else iter(index_epochs)
        self._order, self._position = [], 0
        self._file, self._read, self._ahead = None, 0, {}

    def _fail(self, problem):
        raise records_error(self.dataset_spec, self.path, self.class_id, problem) from None

    def _next_epoch(self):
        if self._epochs is None:
            self._order = list(range(self.num_images))
        else:
            self._order = next(self._epochs)
        self._position = 0
        self._file, self._read, self._ahead = None, 0, {}

    def _next_record(self):
        try:
            return next(self._file)
        except StopIteration:
            return None
        except TFRecordDamage as e:
            self._fail(f"damaged after {self._read} readable records ({e.problem})")
        except (OSError, tf.errors.OpError) as e:  # local or remote (GFile) file errors
            self._fail(f"unreadable after {self._read} records ({str(e).splitlines()[0]})")

    def _record(self, index):
        if index in self._ahead:
            return self._ahead.pop(index)
        if self._file is None:
            self._file = read_tfrecord(open_records(self.path), name=self.path)
        while True:
            record = self._next_record()
            if record is None:
                self._fail(f"holds {self._read} records but dataset_spec.json says "
                           f"{self.num_images}")
            self._read += 1
            if self._read - 1 == index:
                break
            self._ahead[self._read - 1] = record
        if self._read == self.num_images and self._exact and self._next_record() is not None:
            self._fail(f"holds more than the {self.num_images} records dataset_spec.json "
                       f"says")
        return record

    def take(self, count, read=True):
        """The next `count` elements; with `read=False` the records are b'' (not read)."""
        out = []
        for _ in range(count):
            if self._position == len(self._order):
                self._next_epoch()
            index = self._order[self._position]
            self._position += 1
            out.append((index, self._record(index) if read else b""))
        return out


def open_records(path):
    """What `read_tfrecord` reads `path` from: the path itself when local, else an opener of a
    `tf.io.gfile.GFile` (the only way to reach gs:// and other remote file systems)."""
    if is_remote(path):
        return lambda: tf.io.gfile.GFile(path, "rb")
    return path


def current_global_seed():
    """TensorFlow's global seed in force now, as its seeded ops see it (87654321 if unset).

    Pass it to `index_epochs` when the tf.data pipeline it stands for would be built."""
    return tf.compat.v1.random.get_seed(0)[0]


def index_epochs(num_images, shuffle_buffer_size, shuffle_seed, global_seed):
    """Shuffled epochs of `range(num_images)`, one list each (None: no shuffle).

    The shuffle is the one `class_stream` applies to the records, with the same seed, as
    built under TensorFlow global seed `global_seed` (see `current_global_seed`).
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
