"""Per-class record streams and the episode id stream (the official reader semantics).

The official per-class stream is: the class file's records in file order -> optional `take`
-> shuffle (buffer `min(n_c, shuffle_buffer_size)`, only if > 1) -> `repeat()`. Shuffling
*before* repeating gives clean epochs: every record of an epoch is emitted before any record
of the next one. Elements carry `record_index`, the record's position in its file (used by
the decoder's error messages and by tests).

Episodes read these streams without TensorFlow: a shuffle's output order depends only on its
seed, buffer size and input length, never on the elements, so `class_files.ClassRecords`
takes each epoch's order of record indices from `shuffle_order.ShuffleOrders` -- the very
permutation `range(n).shuffle(...)` with the class's seed (and the global seed in force when
the reader was built) would produce, computed in Python and tested bit for bit against
TensorFlow -- and reads exactly the records an episode needs, by offset, through the
process's bounded pool of open files. A class's offsets and epoch order are built the first
time it is used, so the first episode only pays for its own classes; memory grows by 12 bytes
per record of the classes touched, and open files not at all. Damaged or miscounted files
raise `RecordsError` naming the file, the source and `--check`.

A pure-Python generator turns sampled episode descriptions into a fixed-size
`flush | support | query` list of `(stream index, count)` pairs. A cursor per class (position
in the class's current epoch) decides the flush: if a request does not fit in what is left of
the epoch, the rest of the epoch goes to the (discarded) flush chunk first. Hence all the
images of a class in one episode come from one epoch, so none repeats. Flushed records are
skipped, not read (their bytes are b''), and each chunk is padded with placeholders
(`record_index` and class id -1, bytes b''). The generator (run by `from_generator` in
tf.data threads) is plain Python and numpy: it calls no TensorFlow op or tf.data iterator,
so an interpreter exit or iterator deletion never waits on TensorFlow work inside it.

Before any stream is built, `check_split_files` makes sure the records can serve a split.
"""

import copy
import os

import numpy as np
import tensorflow as tf

from ctx_tf.data.reading.class_files import (ClassIndices, ClassRecords, current_global_seed,
                                             effective_num_images, index_epochs)
from ctx_tf.data.reading.decoder import parse_record
from ctx_tf.data.reading.errors import ReaderError, records_error

PLACEHOLDER_CLASS_ID = -1


class EpisodeIdStream:
    """Python side of the reader: descriptions -> `[N, 2]` int64 `(stream, count)` arrays.

    Args:
      descriptions: a `ctx_tf.data.sampling.DescriptionSource`.
      num_images: images per epoch of each class stream, indexed by relative class id.
      chunk_sizes: `(flush, support, query)` from the sampler.
      where: text naming the source and split in error messages.

    Stream index `len(num_images)` is the placeholder. Each episode's pairs expand to exactly
    `sum(chunk_sizes)` ids; every chunk ends with a placeholder entry (possibly of count 0).
    """

    def __init__(self, descriptions, num_images, chunk_sizes, where="", class_ids=None):
        self.descriptions = descriptions
        self.num_images = [int(n) for n in num_images]
        self.chunk_sizes = tuple(int(c) for c in chunk_sizes)
        self.placeholder = len(self.num_images)
        self.cursors = [0] * len(self.num_images)
        self.where = where
        self.class_ids = class_ids  # absolute ids, for error messages only
        self.last_description = None

    def _name(self, i):
        if self.class_ids is not None:
            return f"class id {self.class_ids[i]} (relative id {i})"
        return f"relative class id {i}"

    def next_episode(self):
        description = self.descriptions.next_description()
        self.last_description = description
        flush, support, query = [], [], []
        for i, s, q in description:
            n = self.num_images[i]
            if s + q > n:
                raise ReaderError(
                    f"{self.where}: the episode asks for {s} support + {q} query images of "
                    f"{self._name(i)}, which has only {n}")
            left = n - self.cursors[i]
            if s + q > left:
                flush.append((i, left))
                self.cursors[i] = 0
            support.append((i, s))
            query.append((i, q))
            self.cursors[i] += s + q
        chunks = []
        for name, pairs, size in zip(("flush", "support", "query"), (flush, support, query),
                                     self.chunk_sizes):
            used = sum(count for _, count in pairs)
            if used > size:
                raise ReaderError(
                    f"{self.where}: the episode needs {used} {name} slots but the chunk holds "
                    f"{size}; the sampler's compute_chunk_sizes() does not bound its "
                    f"descriptions")
            chunks.extend(pairs)
            chunks.append((self.placeholder, size - used))
        return np.asarray(chunks, dtype=np.int64).reshape(-1, 2)

    def __iter__(self):
        while True:
            yield self.next_episode()


class EpisodeReader:
    """Builds the raw episode dataset of one source and split.

    Args:
      dataset_spec: spec of the source (`path` = its records directory).
      split: `Split`.
      shuffle_buffer_size: per-class shuffle buffer (None or 0: file order).
      num_to_take: read only the first records of each class file (-1/None: all).
      class_seeds: None (unseeded shuffles) or one shuffle seed per class of the split.
    """

    def __init__(self, dataset_spec, split, shuffle_buffer_size=None, num_to_take=-1,
                 class_seeds=None):
        self.dataset_spec = dataset_spec
        self.split = split
        self.class_set = list(dataset_spec.get_classes(split))
        self.num_classes = len(self.class_set)
        self.shuffle_buffer_size = shuffle_buffer_size
        self.num_to_take = -1 if num_to_take is None else num_to_take
        if class_seeds is not None and len(class_seeds) != self.num_classes:
            raise ValueError(f"{len(class_seeds)} shuffle seeds for {self.num_classes} classes")
        self.class_seeds = class_seeds
        self.indices = ClassIndices(dataset_spec, self.class_set, self.num_to_take)
        self.num_images = [self.indices.num_images(i) for i in range(self.num_classes)]
        self._generation = 0  # see stop()
        self._index_epochs = {}  # relative class id -> ShuffleOrders, built on first use
        # tf.data mixes TensorFlow's global seed into every seeded shuffle. The epoch orders
        # are built lazily, on first use, when the caller may have set another global seed
        # (training does): they use the one in force now, when the pipeline is built.
        self._global_seed = current_global_seed()

    def class_records(self, i):
        """A fresh `ClassRecords` of relative class `i` (its epochs continue across readers)."""
        if i not in self._index_epochs:
            self._index_epochs[i] = index_epochs(
                self.num_images[i], self.shuffle_buffer_size,
                None if self.class_seeds is None else self.class_seeds[i], self._global_seed)
        return ClassRecords(self.dataset_spec, self.class_set[i], self.num_to_take,
                            self._index_epochs[i], lambda: self.indices[i])

    def episodes(self, descriptions, chunk_sizes):
        """Yields raw episodes `(records, class_ids, record_indices)` (numpy, see the module)."""
        where = f"{self.dataset_spec.name} split {getattr(self.split, 'name', self.split)}"
        stream = EpisodeIdStream(descriptions, self.num_images, chunk_sizes, where,
                                 self.class_set)
        readers = {}
        generation = self._generation
        while self._generation == generation:
            yield self._next_episode(stream, readers)

    def stop(self):
        """Ends the episode generators of every iteration started so far at their next
        episode (later iterations run normally); `pipeline.iterate` calls it before releasing
        its iterator, so that no generator call is in flight when the iterator is deleted."""
        self._generation += 1

    def _next_episode(self, stream, readers):
        flush_size = stream.chunk_sizes[0]
        records, class_ids, indices = [], [], []
        for i, count in stream.next_episode().tolist():
            if i == stream.placeholder:
                records += [b""] * count
                class_ids += [PLACEHOLDER_CLASS_ID] * count
                indices += [-1] * count
                continue
            if i not in readers:
                readers[i] = self.class_records(i)
            # Flushed records only advance the stream: they are never decoded.
            for index, record in readers[i].take(count, read=len(records) >= flush_size):
                records.append(record)
                indices.append(index)
            class_ids += [self.class_set[i]] * count
        return (np.array(records, dtype=object), np.array(class_ids, dtype=np.int64),
                np.array(indices, dtype=np.int64))

    def episode_dataset(self, descriptions, chunk_sizes):
        """Raw episodes: `(records, class_ids, record_indices)`, each `[sum(chunk_sizes)]`."""
        size = sum(chunk_sizes)
        # Each iteration restarts every class stream (fresh cursors and files).
        return tf.data.Dataset.from_generator(
            lambda: self.episodes(descriptions, chunk_sizes),
            output_signature=(tf.TensorSpec([size], tf.string),
                              tf.TensorSpec([size], tf.int64),
                              tf.TensorSpec([size], tf.int64))).prefetch(1)


# ----------------------------------------------------------------------------- up-front checks


def split_name(split):
    """The name of a `Split` (or of whatever else names a split)."""
    return getattr(split, "name", str(split))


def check_split_files(dataset_spec, split, validate_records, num_to_take):
    """Fails early (`ReaderError` naming the files) when the records cannot serve `split`;
    returns the split's class ids. `validate_records` also counts every file's records."""
    where = f"source {dataset_spec.name!r} split {split_name(split)}"
    directory = dataset_spec.path
    if not tf.io.gfile.isdir(directory):
        parent = os.path.dirname(directory.rstrip("/"))
        hint = ("" if tf.io.gfile.isdir(parent) else
                f" (the records root {parent} does not exist either)")
        raise ReaderError(f"{where}: records directory {directory} does not exist{hint}")
    classes = list(dataset_spec.get_classes(split))
    if not classes:
        raise ReaderError(f"{where}: the split has no classes in {directory}/dataset_spec.json")
    present = set(tf.io.gfile.listdir(directory))
    missing = []
    for class_id in classes:
        path = dataset_spec.record_path(class_id)
        if os.path.basename(path) not in present:
            missing.append((class_id, path))
    if missing:
        shown = ", ".join(f"{p} (class id {c})" for c, p in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ReaderError(f"{where}: {len(missing)} class file(s) missing: {shown}{more}")
    # One stat per file: a record takes at least 16 bytes of framing, so this catches empty
    # and badly truncated files before anything is built.
    for class_id in classes:
        path = dataset_spec.record_path(class_id)
        expected = effective_num_images(
            dataset_spec.get_total_images_per_class(class_id), num_to_take)
        size = tf.io.gfile.stat(path).length
        if size < 16 * expected:
            raise records_error(dataset_spec, path, class_id,
                                f"{size} bytes, too small for {expected} records")
    if validate_records:
        for class_id in classes:
            _validate_file(dataset_spec, class_id, num_to_take)
    return classes


def _validate_file(dataset_spec, class_id, num_to_take):
    path = dataset_spec.record_path(class_id)
    expected = dataset_spec.get_total_images_per_class(class_id)
    labels = tf.data.TFRecordDataset(path).map(
        lambda r: parse_record(r)["label"])
    try:
        count, wrong = labels.reduce(
            (np.int64(0), np.int64(0)),
            lambda state, label: (state[0] + 1,
                                  state[1] + tf.cast(label != class_id, tf.int64)))
    except tf.errors.OpError as e:
        raise ReaderError(f"{path} (class id {class_id}): unreadable records: "
                          f"{e.message.splitlines()[0]}") from None
    count, wrong = int(count), int(wrong)
    if count != expected and not (num_to_take is not None and 0 <= num_to_take <= count):
        raise ReaderError(f"{path} (class id {class_id}) holds {count} records but "
                          f"dataset_spec.json says {expected}")
    if wrong:
        raise ReaderError(f"{path}: {wrong} of its {count} records have a label other than "
                          f"its class id {class_id}")


def limited_spec(dataset_spec, num_to_take):
    """The spec as the sampler should see it when classes are cut to `num_to_take` images.

    (The official code truncates the streams but samples and flushes with the full counts,
    which breaks the no-duplicate rule; here both use the truncated count.)
    """
    if num_to_take is None or num_to_take < 0:
        return dataset_spec
    limited = copy.copy(dataset_spec)
    full = dataset_spec.num_images
    limited.num_images = lambda class_id: effective_num_images(
        full(class_id), num_to_take)
    return limited
