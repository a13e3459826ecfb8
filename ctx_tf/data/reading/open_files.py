"""A bounded pool of open record files, read by offset.

A run reads thousands of class files (all sources: 3,144 training classes). Keeping one open
file per class touched would run into the operating system's open-file limit (often 1024, and
lower on shared machines), so every read goes through `OpenFiles`: at most `max_open` files
are open at once, the least recently used one is closed to make room, and a closed file is
simply reopened when it is needed again (its reads are by offset, so nothing is lost).

Local files are read with `os.pread` (no shared file position). Remote files (gs:// and the
other `tf.io.gfile` file systems) are `tf.io.gfile.GFile` objects, read by seek + read; each
holds TensorFlow's read buffer (512 KiB), so the pool's read-ahead is bounded by
`max_open x 512 KiB` (16 MiB at the default) for the whole process, whatever the number of
classes.

The pool is shared by every reader of the process (`OPEN_FILES`) and safe to use from several
threads. Errors are the operating system's (`OSError`, or TensorFlow's `OpError` for remote
files); callers name the class file and say what to do.
"""

import collections
import os
import threading

import tensorflow as tf

from ctx_tf.files import is_remote

DEFAULT_MAX_OPEN_FILES = 32


class _Local:
    def __init__(self, path):
        self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))

    def read(self, offset, size):
        return os.pread(self.fd, size, offset)

    def size(self):
        return os.fstat(self.fd).st_size

    def close(self):
        os.close(self.fd)


class _Remote:
    def __init__(self, path):
        self.path = path
        self.file = tf.io.gfile.GFile(path, "rb")

    def read(self, offset, size):
        self.file.seek(offset)
        return self.file.read(size)

    def size(self):
        return self.file.size()

    def close(self):
        self.file.close()


class OpenFiles:
    """At most `max_open` open files, least recently used closed first (see the module)."""

    def __init__(self, max_open=DEFAULT_MAX_OPEN_FILES):
        self._files = collections.OrderedDict()
        self._lock = threading.Lock()
        self.max_open = max_open
        self.opened = 0  # files opened so far (reopenings included), for benchmarks and tests

    @property
    def max_open(self):
        return self._max_open

    @max_open.setter
    def max_open(self, value):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"the open-file pool needs max_open >= 1, got {value!r}")
        with self._lock:
            self._max_open = value
            self._shrink(value)

    def _shrink(self, size):
        while len(self._files) > size:
            _, handle = self._files.popitem(last=False)
            handle.close()

    def _handle(self, path):
        handle = self._files.get(path)
        if handle is not None:
            self._files.move_to_end(path)
            return handle
        self._shrink(self._max_open - 1)
        handle = _Remote(path) if is_remote(path) else _Local(path)
        self._files[path] = handle
        self.opened += 1
        return handle

    def read(self, path, offset, size):
        """Up to `size` bytes of `path` from byte `offset` (fewer only at the end of the file)."""
        with self._lock:
            return self._handle(path).read(offset, size)

    def size(self, path):
        """The size of `path` in bytes."""
        with self._lock:
            return self._handle(path).size()

    def forget(self, path):
        """Closes `path` if it is open (e.g. after a read error, so it is reopened afresh)."""
        with self._lock:
            handle = self._files.pop(path, None)
            if handle is not None:
                handle.close()

    def close_all(self):
        with self._lock:
            self._shrink(0)

    def __len__(self):
        return len(self._files)


OPEN_FILES = OpenFiles()
