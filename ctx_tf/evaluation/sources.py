"""The sources of a run: a records root and source names -> checked dataset specs.

One function, `load_sources`, serves training (its train and eval datasets), validation, the
final test and the commands (`python -m ctx_tf.train`, `evaluate`, `visualize`): every source
is found (`<records root>/<name>/dataset_spec.json`), its spec read and, for the split a run
will draw from, its classes and class files checked, before anything is built or written.
Local folders and any `tf.io.gfile` file system (`gs://...`) alike.
"""

import os

import tensorflow as tf

from ctx_tf.data import dataset_spec as spec_lib
from ctx_tf.data import facts
from ctx_tf.data.reading import episode_reader as reader_lib
from ctx_tf.errors import UserError


class SourceError(UserError, ValueError):
    """A source cannot be found or read under the records root; the message names the flag or
    binding that named it and the file at fault."""


def join(root, name):
    """`root/name` on a local or a `tf.io.gfile` file system."""
    root = str(root)
    return f"{root.rstrip('/')}/{name}" if "://" in root else os.path.join(root, name)


def available_sources(records_root):
    """The names of the folders under `records_root` that hold a dataset_spec.json."""
    found = []
    for entry in sorted(tf.io.gfile.listdir(str(records_root))):
        name = entry.rstrip("/")
        if tf.io.gfile.exists(join(join(records_root, name), spec_lib.SPEC_FILENAME)):
            found.append(name)
    return found


def _check_names(records_root, names, named_by):
    if not names:
        raise SourceError(f"{named_by} names no source; give comma-separated source names "
                          "(folders under --records_root_dir)")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise SourceError(f"sources listed more than once ({named_by}): {duplicates}")
    if not records_root:
        raise SourceError(f"no records root for {', '.join(names)} ({named_by}): pass "
                          "--records_root_dir")
    if not tf.io.gfile.isdir(str(records_root)):
        raise SourceError(f"--records_root_dir={records_root} is not a directory")
    missing = [name for name in names if not tf.io.gfile.exists(
        join(join(records_root, name), spec_lib.SPEC_FILENAME))]
    if missing:
        quoted = ", ".join(repr(name) for name in missing)
        where = join(records_root, missing[0] if len(missing) == 1 else "<name>")
        raise SourceError(
            f"unknown source{'s' if len(missing) > 1 else ''} {quoted}: no "
            f"{where}/{spec_lib.SPEC_FILENAME} ({named_by}). Sources under {records_root}: "
            f"{', '.join(available_sources(records_root)) or 'none'}. Meta-Dataset sources: "
            f"{', '.join(facts.SOURCES)}")


def load_sources(records_root, names, split=None, named_by="--datasets"):
    """`{name: dataset_spec}` of every source `names` lists under `records_root`.

    Args:
      records_root: the folder of the sources (official layout).
      names: source names, i.e. folder names under `records_root`.
      split: a `Split` (or its name) the run draws from; then each source must have classes
        in it, and their class files must be present and not truncated (one stat per file).
      named_by: the flag or gin binding that named the sources, for the messages.

    Raises:
      SourceError: no or duplicate names, no records root, an unknown source (the message
        lists the sources the root holds), an unreadable spec, a split without classes.
      ReaderError: a class file missing, empty or cut short (named).
    """
    names = list(names)
    _check_names(records_root, names, named_by)
    split = None if split is None else spec_lib.as_split(split)
    specs = {}
    for name in names:
        directory = join(records_root, name)
        try:
            spec = spec_lib.load_dataset_spec(directory)
        except (ValueError, OSError, tf.errors.OpError) as e:
            raise SourceError(f"source {name!r} ({named_by}): {e}") from e
        if split is not None:
            if not list(spec.get_classes(split)):
                raise SourceError(
                    f"source {name!r} ({named_by}) has no {split.name} classes ("
                    f"{class_counts(spec)} classes in {directory}/{spec_lib.SPEC_FILENAME}); "
                    "use another split or leave it out")
            reader_lib.check_split_files(spec, split, validate_records=False, num_to_take=None)
        specs[name] = spec
    return specs


def class_counts(spec):
    """`train 64, valid 16, test 24`: the classes of each split of `spec`."""
    return ", ".join(f"{split.name.lower()} {len(list(spec.get_classes(split)))}"
                     for split in spec_lib.Split)


def describe(name, spec):
    """`name (train 64, valid 16, test 24 classes)`, for a command's start-up lines."""
    return f"{name} ({class_counts(spec)} classes)"
