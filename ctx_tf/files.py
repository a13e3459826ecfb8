"""The one way ctx_tf writes a file: atomically, so a reader never sees half of it.

Every file the project writes (records, specs, checkpoint index files, results, manifests)
goes through `atomic_write` or `atomic_write_with`: the content is written to a temporary
name in the target's own folder and renamed over the target, so an interrupted command leaves
either the old file or the new one, never a truncated one. Paths with a URL scheme
(`gs://...`) go through `tf.io.gfile`, whose rename is the atomic step there.
"""

import json
import os
import tempfile
import uuid

from ctx_tf.errors import UserError


def _current_umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; finished files get the mode a plain open() would give them.
_FILE_MODE = 0o666 & ~_current_umask()


def is_remote(path):
    """True for paths with a URL scheme (gs://...), which only TensorFlow's file layer reaches."""
    return "://" in path


def atomic_write_with(path, write_fn):
    """Calls `write_fn(tmp_path)` to fill a temporary file beside `path`, then renames it to
    `path`. The temporary file is removed if `write_fn` (or anything after it) fails."""
    path = os.fspath(path)
    if is_remote(path):
        import tensorflow as tf  # only remote file systems need TensorFlow's file layer

        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            write_fn(tmp)
            tf.io.gfile.rename(tmp, path, overwrite=True)
        except BaseException:
            if tf.io.gfile.exists(tmp):
                tf.io.gfile.remove(tmp)
            raise
        return path
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=directory)
    os.close(fd)
    try:
        write_fn(tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def atomic_write(path, data):
    """Writes `data` (bytes, or str as UTF-8) to `path` atomically; returns `path`."""
    if isinstance(data, str):
        data = data.encode("utf-8")

    def write(tmp):
        if is_remote(tmp):
            import tensorflow as tf

            with tf.io.gfile.GFile(tmp, "wb") as f:
                f.write(data)
        else:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())

    return atomic_write_with(path, write)


def write_json(path, payload):
    """Writes `payload` as indented, key-sorted JSON (one trailing newline), atomically."""
    return atomic_write(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def check_output_dir(path, what):
    """Raises UserError unless `path` is a writable folder or can be made one; creates nothing.

    `what` names it in the message (a flag such as '--output_dir'). Commands call this before
    they create anything, so that a bad output location leaves the file system untouched.
    """
    path = os.fspath(path)
    if is_remote(path):
        return
    target = os.path.abspath(path)
    existing = target
    while not os.path.lexists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        where = "is a file" if existing == target else f"lies under {existing}, which is a file"
        raise UserError(f"{what}={path} {where}, not a folder; name a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{what}={path}: {existing} is not writable")
