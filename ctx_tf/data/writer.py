"""The writer command: image folders to a source in the official layout, or the check of one.

  python -m ctx_tf.data.writer --images_root=DIR --records_root_dir=DIR --name=NAME \
      [--bilevel] [--valid_fraction=0.15] [--test_fraction=0.15] [--seed=0] \
      [--splits_file=splits.json] [--invert] [--overwrite] [--workers=N] [--strict]
  python -m ctx_tf.data.writer --check=RECORDS_ROOT/NAME [--reference_spec=FILE|official]

Writing is :func:`ctx_tf.data.writing.folder.write_source_from_folder` (layout
``root/<class>/<image>`` or, with ``--bilevel``, ``root/<superclass>/<class>/<image>``), written
by the conversion engine of the Meta-Dataset sources, so it shares their bad-image policy:
non-image files are left out and counted, unreadable images are named and skipped (or refused
with ``--strict``, leaving nothing behind), and a killed run resumes. Splits, when not given
by ``--splits_file``, are drawn at random with ``--seed``. ``--check`` runs
:func:`ctx_tf.data.checking.consistency.check_source`. Arrays held in memory are written by
:func:`ctx_tf.data.writing.arrays.write_source_from_arrays` (``ctx_tf.write_source_from_arrays``).
"""

from ctx_tf.cli import quiet_start

# First, so that `python -m` captures TensorFlow's start-up logs of the imports below.
quiet_start.begin_if_main(__name__)

from absl import app, flags

from ctx_tf import cli
from ctx_tf.data.checking.consistency import check_source
from ctx_tf.data.writing.errors import SourceWriteError
from ctx_tf.data.writing.folder import write_source_from_folder
from ctx_tf.data.writing.splits import (DEFAULT_SEED, DEFAULT_TEST_FRACTION,
                                        DEFAULT_VALID_FRACTION, load_splits_file)




def run_cli(flag_values) -> int:
    """Runs the command line with parsed absl ``flag_values`` (see :func:`define_flags`)."""
    f = flag_values
    if f.check:
        report = check_source(f.check, raise_on_error=False, reference_spec=f.reference_spec)
        print(report.summary())
        for p in report.problems + report.reference_differences:
            print("  - " + p)
        return 0 if report.ok else 1
    if f.reference_spec:
        raise SourceWriteError("--reference_spec only goes with --check")
    missing = [n for n in ("images_root", "records_root_dir", "name") if not getattr(f, n)]
    if missing:
        raise SourceWriteError("missing flags: " + ", ".join("--" + m for m in missing) +
                               " (or use --check=DIR)")
    splits = load_splits_file(f.splits_file) if f.splits_file else None
    report = write_source_from_folder(
        f.images_root, f.records_root_dir, f.name, bilevel=f.bilevel, splits=splits, seed=f.seed,
        valid_fraction=f.valid_fraction, test_fraction=f.test_fraction, invert=f.invert,
        overwrite=f.overwrite, workers=f.workers, strict=f.strict)
    print(report.summary())
    return 0


def define_flags(flag_values=None):
    """Defines the command-line flags on ``flag_values`` (default: the global absl FLAGS)."""
    fv = flags.FLAGS if flag_values is None else flag_values
    flags.DEFINE_string("images_root", None, "Folder of images: root/<class>/<image> or, with "
                        "--bilevel, root/<superclass>/<class>/<image>.", flag_values=fv)
    flags.DEFINE_string("records_root_dir", None, "Folder receiving the <name>/ source folder.",
                        flag_values=fv)
    flags.DEFINE_alias("records_root", "records_root_dir", flag_values=fv)
    flags.DEFINE_string("name", None, "Source name (folder and spec name).", flag_values=fv)
    flags.DEFINE_bool("bilevel", False, "Two-level tree: superclasses, then classes.",
                      flag_values=fv)
    flags.DEFINE_float("valid_fraction", DEFAULT_VALID_FRACTION,
                       "Fraction of classes (superclasses if bi-level) drawn for VALID.",
                       flag_values=fv)
    flags.DEFINE_float("test_fraction", DEFAULT_TEST_FRACTION,
                       "Fraction of classes (superclasses if bi-level) drawn for TEST.",
                       flag_values=fv)
    flags.DEFINE_integer("seed", DEFAULT_SEED, "Seed of the random split.", flag_values=fv)
    flags.DEFINE_string("splits_file", None, "JSON with lists 'train', 'valid', 'test' of "
                        "class (superclass) folder names; overrides the random split.",
                        flag_values=fv)
    flags.DEFINE_bool("invert", False, "Colour-invert the images.", flag_values=fv)
    flags.DEFINE_bool("overwrite", False, "Replace an existing non-empty source folder "
                      "(without it, the folder of an interrupted run is resumed).",
                      flag_values=fv)
    flags.DEFINE_integer("workers", 1, "Processes writing classes in parallel.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_bool("strict", False, "Refuse an unreadable image instead of skipping it "
                      "(and leave nothing behind).", flag_values=fv)
    flags.DEFINE_string("check", None, "Only check this source folder and exit.",
                        flag_values=fv)
    flags.DEFINE_string("reference_spec", None, "With --check: also compare the source's spec "
                        "with this dataset_spec.json, or with 'official': the official spec of "
                        "the Meta-Dataset source of that name (shipped with ctx_tf).",
                        flag_values=fv)
    return fv


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    return run_cli(flags.FLAGS)


if __name__ == "__main__":
    define_flags()
    cli.run("data.writer", main)
