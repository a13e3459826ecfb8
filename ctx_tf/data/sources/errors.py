"""The errors of the source converters (a leaf module: the plan, archive and rule modules
all raise them)."""

from ctx_tf.errors import UserError


class SourceConversionError(UserError, ValueError):
    """Bad raw data or a bad conversion request; the message names the path, class or flag."""


class MissingRawFileError(SourceConversionError, FileNotFoundError):
    """An expected file or folder of a download is absent; the message names it."""
