"""Iterating episode and batch pipelines: `iterate` and the release of abandoned pipelines.

`iterate(dataset, dataset_specs, split)` is how consumers iterate the pipelines of
`ctx_tf.data.pipeline` (re-exported there): read errors become `RecordsError` naming the
class file, and when the consumer stops, the pipeline's episode generators are stopped and
the iterator read to its end before it is released (see `_release`). Iterations still open
when the interpreter exits are released by an `atexit` hook, while Python still runs: an
iterator deleted during interpreter finalization can wait for minutes, or forever, on
TensorFlow threads that run or finalize the episode generators.
"""

import atexit
import re
import time
import weakref

import tensorflow as tf

from ctx_tf.data.reading.class_files import find_damaged_file
from ctx_tf.data.reading.errors import RecordFileError, RecordsError, check_hint

# How a `RecordsError` or `RecordFileError` raised inside a reader's generator appears in
# TensorFlow's message.
_RECORDS_ERROR_IN_MESSAGE = re.compile(r"(RecordsError|RecordFileError): (.+)")
_READ_ERRORS = (tf.errors.DataLossError, tf.errors.FailedPreconditionError,
                tf.errors.InvalidArgumentError)


def _records_error(error, dataset_specs, split):
    """The `RecordsError` behind a TensorFlow read error, or None."""
    found = _RECORDS_ERROR_IN_MESSAGE.search(error.message)
    if found:
        kind = RecordsError if found.group(1) == "RecordsError" else RecordFileError
        return kind(found.group(2).strip())
    first_line = error.message.splitlines()[0] if error.message else type(error).__name__
    for spec in dataset_specs:
        # The decoders name the file of a bad record (see the module docstring).
        if f"{spec.path}/" in error.message:
            return RecordsError(f"source {spec.name!r}: {first_line}; "
                                f"{check_hint(spec.path)}")
    if split is not None:
        for spec in dataset_specs:
            damaged = find_damaged_file(spec, split)
            if damaged is not None:
                return damaged
    return None


# The episode readers behind each episode pipeline, for `iterate` to stop them.
_EPISODE_READERS = weakref.WeakKeyDictionary()
_FINALIZE_GRACE_S = 0.2


# The `iterate` generators started and not yet finished, for the exit hook.
_OPEN_ITERATIONS = weakref.WeakSet()


def with_episode_readers(dataset, episode_readers):
    """`dataset`, registered so that `iterate` can stop its `EpisodeReader`s."""
    _EPISODE_READERS[dataset] = list(episode_readers)
    return dataset


def _episode_readers_of(dataset):
    """The `EpisodeReader`s of `dataset` and of the datasets it is built on (a `take`, `map`
    or `batch` of an episode pipeline still runs its generators)."""
    readers, pending, seen = [], [dataset], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        readers.extend(_EPISODE_READERS.get(current, ()))
        inputs = getattr(current, "_inputs", None)
        pending.extend(inputs() if callable(inputs) else ())
    return readers


def _release(iterator, episode_readers, max_elements=1000):
    """Stops the episode generators and reads `iterator` to its end.

    TensorFlow runs the generators asynchronously (prefetch, and `map` parallelized by its
    default optimizations), and deleting an iterator while a generator call waits for the
    Python interpreter lock deadlocks: the deleting thread holds the lock and waits for that
    call. Once the generators are stopped, reading to the end (`next` releases the lock) lets
    every call in flight finish, so the iterator can then be deleted safely. Pipelines without
    episode generators (batches, datasets built elsewhere) are left as they are.
    """
    if not episode_readers:
        return
    for episode_reader in episode_readers:
        episode_reader.stop()
    for _ in range(max_elements):
        try:
            next(iterator)
        except StopIteration:
            break
        except Exception:  # noqa: BLE001 -- an errored element in flight; keep draining
            continue
    # The end of a generator is followed by its finalization, a Python call TensorFlow makes
    # from one of its threads: give it the interpreter before the iterator is deleted.
    time.sleep(_FINALIZE_GRACE_S)


def iterate(dataset, dataset_specs, split=None):
    """Yields the elements of a pipeline; record read errors become `RecordsError`.

    The way consumers iterate pipelines: `for episode, source_id in iterate(dataset, specs,
    split)`. A `tf.errors` read error (damaged or miscounted class file, undecodable record)
    is re-raised as `RecordsError` (a `UserError`) naming the class file, its source and the
    `--check` command; when TensorFlow's message names no file, the sources' class files of
    `split` are re-read to find it. Other errors pass through unchanged.

    When the consumer stops (the generator is closed or collected, an error ends it, or the
    interpreter exits), the episode generators of an episode pipeline of
    `ctx_tf.data.pipeline` (or of a dataset built on one) are stopped and the iterator is
    read to its end before it is released (see `_release`).
    """
    elements = _iterate(dataset, dataset_specs, split)
    _OPEN_ITERATIONS.add(elements)
    return elements


def _iterate(dataset, dataset_specs, split):
    iterator = iter(dataset)
    try:
        while True:
            try:
                element = next(iterator)
            except StopIteration:
                return
            except _READ_ERRORS as e:
                error = _records_error(e, list(dataset_specs), split)
                if error is None:
                    raise
                raise error from None
            yield element
    finally:
        _release(iterator, _episode_readers_of(dataset))
        iterator = None  # deleted now, with nothing in flight


@atexit.register
def _release_open_iterations():
    """Releases the iterations still open at exit (kept by a global, a cycle or a traceback)
    before the interpreter finalizes; a command's normal exit reaches them all here."""
    for elements in list(_OPEN_ITERATIONS):
        elements.close()
