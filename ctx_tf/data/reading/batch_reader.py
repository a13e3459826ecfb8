"""The records of batch pipelines: every class of a split, each record once per epoch.

An epoch interleaves the classes' records in file order, choosing the class of each next
record at random in proportion to the class's size among the classes with records left (the
distribution of `tf.data.Dataset.sample_from_datasets` over per-class streams, which the
official batch pipeline uses), mixes them in a shuffle buffer of `shuffle_buffer_size`
elements (as `Dataset.shuffle`), and cuts them into batches, the last one of an epoch
possibly smaller. Epochs follow each other forever, each with fresh random choices.

All of it runs in Python and numpy (no TensorFlow op), like the episode generator: the
shuffle buffer holds `(class, record index)` pairs, and records are read by offset, through
the process's bounded pool of open files, only when their batch is formed. So a batch
pipeline holds one batch of encoded records and at most `open_files.OPEN_FILES.max_open`
open files, whatever the number of classes (the official pipeline keeps one open
`TFRecordDataset` per class).
"""

import numpy as np
import tensorflow as tf

from ctx_tf.data.reading.class_files import ClassIndices

_BLOCK = 1024  # class choices drawn at a time


class BatchReader:
    """Builds the raw batch dataset of one source and split.

    Args:
      dataset_spec: spec of the source (`path` = its records directory).
      split: `Split`.
      shuffle_buffer_size: elements mixed before batching (None or 0: no mixing).
      num_to_take: read only the first records of each class file (-1/None: all).
    """

    def __init__(self, dataset_spec, split, shuffle_buffer_size=None, num_to_take=-1):
        self.dataset_spec = dataset_spec
        self.split = split
        self.class_set = list(dataset_spec.get_classes(split))
        self.shuffle_buffer_size = shuffle_buffer_size or 0
        self.indices = ClassIndices(dataset_spec, self.class_set, num_to_take)
        self.num_images = np.array([self.indices.num_images(i)
                                    for i in range(len(self.class_set))], np.int64)
        self._generation = 0

    def stop(self):
        """Ends the batch generators of every iteration started so far at their next batch
        (see `EpisodeReader.stop`)."""
        self._generation += 1

    def epoch_order(self, rng):
        """One epoch's `(relative class, record index)` pairs, in reading order."""
        left = self.num_images.copy()
        weights = self.num_images / self.num_images.sum()
        remaining = int(left.sum())
        while remaining:
            for i in rng.choice(len(left), size=min(_BLOCK, remaining), p=weights).tolist():
                yield i, int(self.num_images[i] - left[i])
                left[i] -= 1
                remaining -= 1
                if not left[i] and remaining:
                    # Choices of an emptied class are skipped, i.e. the others are chosen in
                    # proportion to their sizes: drop its weight and draw anew.
                    live = left > 0
                    weights = np.where(live, self.num_images, 0) / self.num_images[live].sum()
                    break

    def shuffled(self, pairs, rng):
        """`pairs` through a shuffle buffer of `shuffle_buffer_size` (as `Dataset.shuffle`)."""
        buffer = []
        for pair in pairs:
            if len(buffer) < self.shuffle_buffer_size:
                buffer.append(pair)
                continue
            if not buffer:
                yield pair
                continue
            slot = int(rng.randint(len(buffer)))
            yield buffer[slot]
            buffer[slot] = pair
        while buffer:
            slot = int(rng.randint(len(buffer)))
            buffer[slot], buffer[-1] = buffer[-1], buffer[slot]
            yield buffer.pop()

    def batches(self, batch_size, rng):
        """Yields `(records, class_ids, record_indices)` numpy arrays, one batch each."""
        generation = self._generation
        while True:
            batch = []
            for pair in self.shuffled(self.epoch_order(rng), rng):
                batch.append(pair)
                if len(batch) == batch_size:
                    yield self._read(batch)
                    batch = []
                    if self._generation != generation:
                        return
            if batch:
                yield self._read(batch)
            if self._generation != generation:
                return

    def _read(self, batch):
        records = [self.indices[i].record(index) for i, index in batch]
        class_ids = [self.class_set[i] for i, _ in batch]
        return (np.array(records, dtype=object), np.array(class_ids, dtype=np.int64),
                np.array([index for _, index in batch], dtype=np.int64))

    def batch_dataset(self, batch_size, label_offset=0, seed=None):
        """Batches over all classes of the split: `(records, labels, class_ids, indices)`.

        Labels are `class_id - first class of the split + label_offset` (int64). With `seed`
        (an int) the batches are the same run to run; each iteration continues the epochs.
        """
        rng = np.random.RandomState(None if seed is None else seed % 2**32)
        shift = int(label_offset) - int(self.class_set[0])
        dataset = tf.data.Dataset.from_generator(
            lambda: self.batches(batch_size, rng),
            output_signature=(tf.TensorSpec([None], tf.string),
                              tf.TensorSpec([None], tf.int64),
                              tf.TensorSpec([None], tf.int64)))
        return dataset.map(lambda r, c, i: (r, c + shift, c, i)).prefetch(1)
