"""Capture of file descriptor 2, where C++ libraries (TensorFlow's logs) write past Python."""

import contextlib
import os
import sys
import tempfile


class FdCapture:
    """File descriptor 2 redirected into a temporary file between `start` and `stop`; `text`
    holds what was written once stopped."""

    def __init__(self):
        self.text = ""
        self._saved = self._sink = None

    def start(self):
        sys.stderr.flush()
        try:
            self._saved = os.dup(2)
        except OSError:  # no stderr to capture
            return self
        self._sink = tempfile.TemporaryFile()
        os.dup2(self._sink.fileno(), 2)
        return self

    def stop(self, replay=False):
        """Restores fd 2; with `replay`, writes what was captured to it."""
        if self._saved is None:
            return self.text
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._saved = None
        self._sink.seek(0)
        self.text = self._sink.read().decode("utf-8", "replace")
        self._sink.close()
        if replay:
            sys.stderr.write(self.text)
            sys.stderr.flush()
        return self.text


@contextlib.contextmanager
def captured_stderr():
    """Redirects file descriptor 2 (C++ logs included) into a temporary file.

    Yields an object whose `text` holds what was written, once the block ends. If the block
    raises, the captured text is written to the real stderr before the exception propagates.
    """
    capture = FdCapture().start()
    failed = True
    try:
        yield capture
        failed = False
    finally:
        capture.stop(replay=failed)
