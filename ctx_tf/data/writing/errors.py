"""The errors of the write path: bad input to a writer, bad raw data or a bad conversion
request (a leaf module: the writers, plan, archive and source modules all raise them)."""

from ctx_tf.errors import UserError


class SourceWriteError(UserError, ValueError):
    """Bad input to a writer (names the file, class or field at fault)."""


class SourceConversionError(UserError, ValueError):
    """Bad raw data or a bad conversion request; the message names the path, class or flag."""


class MissingRawFileError(SourceConversionError, FileNotFoundError):
    """An expected file or folder of a download is absent; the message names it."""
