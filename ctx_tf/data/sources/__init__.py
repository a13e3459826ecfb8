"""Converters from each Meta-Dataset source's public download to the official record layout,
and which module converts which source (modules are imported on first use).

One module per source (`omniglot`, `ilsvrc`, `aircraft`, ...) decides the source's classes,
their ids and splits, and which image each record holds (a `writing.plan.SourcePlan`); one
engine (`ctx_tf.data.writing.engine`) writes any plan. `python -m ctx_tf.data.sources` is the
command.

A source module exposes `plan(raw_dir) -> SourcePlan`, `NAME` and `RAW_EXPECTS` (one line: which
folder `--raw_dir` must be and what it holds). A module converting several sources exposes
`NAMES` instead of `NAME`, takes `plan(raw_dir, name)`, and may give `RAW_EXPECTS` as a dict
keyed by name. It may also expose `describe_raw(raw_dir) -> str`, printed before converting.
"""

import importlib

from ctx_tf.data.writing.errors import SourceConversionError

_PACKAGE = "ctx_tf.data.sources"
MODULES = {
    "ilsvrc_2012": f"{_PACKAGE}.ilsvrc",
    "ilsvrc_2012_v2": f"{_PACKAGE}.ilsvrc",
    "omniglot": f"{_PACKAGE}.omniglot",
    "aircraft": f"{_PACKAGE}.aircraft",
    "cu_birds": f"{_PACKAGE}.cu_birds",
    "dtd": f"{_PACKAGE}.dtd",
    "quickdraw": f"{_PACKAGE}.quickdraw",
    "fungi": f"{_PACKAGE}.fungi",
    "vgg_flower": f"{_PACKAGE}.vgg_flower",
    "traffic_sign": f"{_PACKAGE}.traffic_sign",
    "mscoco": f"{_PACKAGE}.mscoco",
    "mini_imagenet": f"{_PACKAGE}.mini_imagenet",
}
SOURCES = tuple(MODULES)


def module(name):
    """The converter module of source `name`."""
    if name not in MODULES:
        raise SourceConversionError(
            f"unknown source {name!r}; known sources: {', '.join(SOURCES)}")
    try:
        return importlib.import_module(MODULES[name])
    except ModuleNotFoundError as e:
        if e.name != MODULES[name]:
            raise
        raise SourceConversionError(
            f"source {name!r}: its converter {MODULES[name]} is not in this installation")


def raw_expects(name):
    """The one-line description of what `--raw_dir` holds for `name`."""
    try:
        expects = module(name).RAW_EXPECTS
    except SourceConversionError as e:
        return f"(unavailable: {e})"
    return expects[name] if isinstance(expects, dict) else expects


def plan(name, raw_dir):
    """The `SourcePlan` of source `name` read from `raw_dir`."""
    source = module(name)
    return source.plan(raw_dir, name) if hasattr(source, "NAMES") else source.plan(raw_dir)


def describe_raw(name, raw_dir):
    """What was found in `raw_dir`, when the module says; else the folder itself."""
    describe = getattr(module(name), "describe_raw", None)
    return describe(raw_dir) if describe else f"{name} raw data in {raw_dir}"
