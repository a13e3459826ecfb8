"""The official facts of the Meta-Dataset benchmark, shipped as package data.

Dataset specs, class splits, label names, ILSVRC duplicate lists and leaf image counts of
google-research/meta-dataset, derived by tools/derive_benchmark_facts.py (provenance and the
Apache-2.0 license in NOTICE beside this file). Read through `importlib.resources`, so they
work from an installed package without the development checkout's reference material.
Results that are dicts or lists are fresh copies: callers may change them freely.
"""

import copy
import functools
import gzip
import json
from importlib import resources

# The Meta-Dataset sources, in the order of the official spec list.
SOURCES = ("ilsvrc_2012", "ilsvrc_2012_v2", "omniglot", "aircraft", "cu_birds", "dtd",
           "quickdraw", "fungi", "vgg_flower", "traffic_sign", "mscoco")


@functools.lru_cache(maxsize=None)
def _load(filename):
    data = resources.files(__name__).joinpath(filename).read_bytes()
    if filename.endswith(".gz"):
        data = gzip.decompress(data)
    return json.loads(data.decode("utf-8"))


def _lookup(filename, name, what):
    table = _load(filename)
    if name not in table:
        raise KeyError(f"{name!r} has no {what}; known: {', '.join(table)}")
    return table[name]


def dataset_spec(name):
    """The official `dataset_spec.json` of source `name`, parsed (a dict)."""
    return copy.deepcopy(_lookup("specs.json.gz", name, "official dataset spec"))


def splits(name):
    """The official class split lists of `name`: {"train": [...], "valid": [...], "test": [...]}."""
    return copy.deepcopy(_lookup("splits.json", name, "official class split list"))


def labels(name):
    """The official label names of `name` ("traffic_sign", "vgg_flower"), in file order."""
    return list(_lookup("labels.json", name, "official label list"))


@functools.lru_cache(maxsize=None)
def ilsvrc_duplicates():
    """ILSVRC-2012 training files the official converter leaves out, as "<synset>/<file>"."""
    return frozenset(f for files in _load("ilsvrc_duplicates.json").values() for f in files)


def num_leaf_images(name):
    """Images per synset of "ilsvrc_2012" / "ilsvrc_2012_v2" (the official cache)."""
    return dict(_lookup("num_leaf_images.json", name, "official leaf image counts"))
