"""The errors of the read path, and the messages that name the file, its class and source.

A damaged or miscounted class file raises `RecordsError` (naming the file, its source and the
`--check` command); a file the operating system refuses raises `RecordFileError`; both are
`ReaderError`s, as is every other problem of records that cannot serve a split.
"""

from ctx_tf.data.reading.open_files import OPEN_FILES
from ctx_tf.errors import UserError


class ReaderError(UserError, ValueError):
    """Records that cannot be read as the dataset spec describes them."""


class RecordsError(ReaderError):
    """An empty, truncated, corrupt or miscounted class file (the message names it)."""


class RecordFileError(ReaderError):
    """A class file the operating system would not open or read (the message names it)."""


def check_hint(directory):
    """The advice ending every `RecordsError`."""
    return f"run `python -m ctx_tf.data.writer --check={directory}` for a full report"


def records_error(dataset_spec, path, class_id, problem):
    """A `RecordsError` naming the file, its class and source, and the `--check` command."""
    return RecordsError(f"{path} (class id {class_id} of source {dataset_spec.name!r}): "
                        f"{problem}; {check_hint(dataset_spec.path)}")


def file_error(dataset_spec, path, class_id, error):
    """A `RecordFileError` for an operating-system (or remote file system) error."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    advice = "check that the file exists and is readable"
    if getattr(error, "errno", None) == 24:  # EMFILE
        advice = ("the process has reached its open-file limit: raise it (`ulimit -n`); "
                  "ctx_tf itself keeps at most "
                  f"{OPEN_FILES.max_open} class files open")
    return RecordFileError(f"{path} (class id {class_id} of source {dataset_spec.name!r}): "
                           f"cannot read the file: {text}; {advice}")
