"""Converts Meta-Dataset sources from their public downloads to the official record layout.

  python -m ctx_tf.data.sources --source=NAME --raw_dir=DIR --records_root_dir=DIR \
      [--workers=N] [--strict] [--overwrite] [--alphabets=A,B (omniglot)]
  python -m ctx_tf.data.sources --source=all --raw_dir=omniglot=DIR --raw_dir=dtd=DIR ...

`--records_root` (the official flag name) is accepted for `--records_root_dir`. Several sources
(`--source=a,b` or `all`) take one `--raw_dir=NAME=DIR` each. A killed conversion rerun with the
same command keeps every class already written. `--help` lists what each `--raw_dir` holds.
"""

import os
import sys

from absl import app, flags

from ctx_tf import cli
from ctx_tf.data import sources
from ctx_tf.data.sources import omniglot
from ctx_tf.data.writing import engine
from ctx_tf.data.writing.errors import SourceConversionError

PROG = "ctx_tf.data.sources"


def _raw_dir_help():
    lines = ["Folder with the raw data of the source (for several sources: NAME=DIR, once per "
             "source). Each source expects:"]
    lines += [f"  {name}: {sources.raw_expects(name)}" for name in sources.SOURCES]
    return "\n".join(lines)


def define_flags(flag_values=None):
    """Defines the command-line flags on `flag_values` (default: the global absl FLAGS)."""
    fv = flags.FLAGS if flag_values is None else flag_values
    flags.DEFINE_string("source", None, "Source(s) to convert: one of "
                        f"{', '.join(sources.SOURCES)}; a comma-separated list; or all.",
                        flag_values=fv)
    flags.DEFINE_multi_string("raw_dir", [], _raw_dir_help(), flag_values=fv)
    flags.DEFINE_string("records_root_dir", None, "Folder receiving one <source>/ folder per "
                        "source.", flag_values=fv)
    flags.DEFINE_alias("records_root", "records_root_dir", flag_values=fv)
    flags.DEFINE_integer("workers", None, "Processes writing classes in parallel (default: "
                         "all cores).", lower_bound=1, flag_values=fv)
    flags.DEFINE_bool("strict", False, "Refuse an unreadable image instead of skipping it "
                      "(and leave nothing behind).", flag_values=fv)
    flags.DEFINE_bool("overwrite", False, "Start afresh in a non-empty source folder instead "
                      "of resuming it.", flag_values=fv)
    flags.DEFINE_string("alphabets", None, "omniglot: comma-separated alphabets to convert "
                        "(a slice with the official class ids; no dataset_spec.json).",
                        flag_values=fv)
    return fv


def _split(text):
    return [t for t in (text or "").split(",") if t]


def _raw_dirs(names, values):
    """{source: raw dir} from the --raw_dir values."""
    if len(names) == 1 and len(values) == 1 and not values[0].startswith(f"{names[0]}="):
        return {names[0]: values[0]}
    out = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or name not in names:
            raise SourceConversionError(
                f"--raw_dir={value}: with --source={','.join(names)} every --raw_dir must be "
                f"NAME=DIR with NAME one of {', '.join(names)}")
        if name in out:
            raise SourceConversionError(f"--raw_dir: {name} given twice")
        out[name] = path
    missing = [n for n in names if n not in out]
    if missing:
        raise SourceConversionError(
            f"--raw_dir missing for {', '.join(missing)} (give --raw_dir=NAME=DIR for each)")
    return out


def run_cli(flag_values) -> int:
    """Runs the command with parsed absl `flag_values`; user mistakes raise
    SourceConversionError (turned into one line by `main`)."""
    f = flag_values
    if not f.source:
        raise SourceConversionError(f"--source is required: one of {', '.join(sources.SOURCES)}"
                                    ", a comma-separated list, or all")
    names = list(sources.SOURCES) if f.source == "all" else _split(f.source)
    for name in names:
        sources.module(name)  # unknown or absent converters fail before any work
    if not f.raw_dir:
        raise SourceConversionError("--raw_dir is required")
    if not f.records_root_dir:
        raise SourceConversionError("--records_root_dir (or --records_root) is required")
    alphabets = _split(f.alphabets) or None
    if alphabets and names != ["omniglot"]:
        raise SourceConversionError("--alphabets applies to --source=omniglot only")
    raw_dirs = _raw_dirs(names, f.raw_dir)
    plans = {}
    for name in names:  # every raw folder is read before anything is written
        print(f"reading {sources.describe_raw(name, raw_dirs[name])}", flush=True)
        plans[name] = sources.plan(name, raw_dirs[name])
    for name in names:
        ids = None
        if alphabets:
            ids = omniglot.select_class_ids(omniglot.list_classes(raw_dirs[name]),
                                            alphabets=alphabets)
        report = engine.convert(plans[name], f.records_root_dir, workers=f.workers or os.cpu_count(),
                                strict=f.strict, overwrite=f.overwrite, class_ids=ids)
        print(report.summary(), flush=True)
    return 0


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        return run_cli(flags.FLAGS)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    define_flags()
    cli.run("data.sources", main)
