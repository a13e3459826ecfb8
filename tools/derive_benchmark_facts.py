"""Derives ctx_tf's shipped benchmark facts (ctx_tf/data/facts/) from the official files.

Input: a directory holding unchanged copies of google-research/meta-dataset's dataset specs, class
split lists, label lists, ILSVRC duplicate lists and num_leaf_images caches (the development
checkout has them in ../shared/meta_dataset_specs). Output: one compact file per kind plus a
NOTICE with their provenance and the Apache-2.0 license. The output depends only on the input
bytes, so re-running the script reproduces the committed files exactly.

    python tools/derive_benchmark_facts.py [--specs_dir DIR] [--output_dir DIR]
"""

import argparse
import gzip
import hashlib
import json
import os
import pathlib
import sys

from ctx_tf.files import atomic_write

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
UPSTREAM_REPO = "google-research/meta-dataset"
UPSTREAM_COMMIT = "167609505780a3dc604f50206253d65839093be9"
LICENSE_FILE = "LICENSE.meta-dataset-Apache-2.0"

_CONVERSION = "meta_dataset/dataset_conversion"
SPEC_SOURCES = ("ilsvrc_2012", "ilsvrc_2012_v2", "omniglot", "aircraft", "cu_birds", "dtd",
                "quickdraw", "fungi", "vgg_flower", "traffic_sign", "mscoco")
SPLIT_SOURCES = ("aircraft", "cu_birds", "dtd", "fungi", "mscoco", "quickdraw", "traffic_sign",
                 "vgg_flower")
LABEL_FILES = {"traffic_sign": "TrafficSign_labels.txt", "vgg_flower": "VggFlower_labels.txt"}
DUPLICATE_FILES = ("ImageNet_CUBirds_duplicates.txt", "ImageNet_Caltech101_duplicates.txt",
                   "ImageNet_Caltech256_duplicates.txt")
LEAF_SOURCES = ("ilsvrc_2012", "ilsvrc_2012_v2")

# Output file -> (input file -> its path in the upstream repository). Only the specs are large
# (the two ILSVRC WordNet graphs); they are gzipped, the rest stays readable JSON.
OUTPUTS = {
    "specs.json.gz": {f"{s}_dataset_spec.json": f"{_CONVERSION}/dataset_specs/{s}_dataset_spec.json"
                      for s in SPEC_SOURCES},
    "splits.json": {f"{s}_splits.json": f"{_CONVERSION}/splits/{s}_splits.json"
                    for s in SPLIT_SOURCES},
    "labels.json": {f: f"{_CONVERSION}/{f}" for f in LABEL_FILES.values()},
    "ilsvrc_duplicates.json": {f: f"{_CONVERSION}/{f}" for f in DUPLICATE_FILES},
    "num_leaf_images.json": {
        f"{s}_num_leaf_images.json": f"{_CONVERSION}/dataset_specs/{s}_num_leaf_images.json"
        for s in LEAF_SOURCES},
}


def _read_json(path):
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)


def _content_lines(path):
    """The lines of a text list that are not comments ('#' first), without their newline."""
    with open(path, "r", encoding="utf-8") as f:
        return [line for line in f.read().splitlines()
                if line.strip() and not line.startswith("#")]


def _encode(payload):
    return (json.dumps(payload, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def _gzip(data):
    # mtime=0 and no file name in the header: the bytes depend on the content only.
    return gzip.compress(data, compresslevel=9, mtime=0)


def derive(specs_dir):
    """Returns {output file name: bytes} for every fact file and the NOTICE."""
    specs_dir = pathlib.Path(specs_dir)
    missing = [name for files in OUTPUTS.values() for name in files
               if not (specs_dir / name).is_file()]
    if not (specs_dir / LICENSE_FILE).is_file():
        missing.append(LICENSE_FILE)
    if missing:
        raise FileNotFoundError(f"{specs_dir}: missing official file(s) {missing}")

    specs = {s: _read_json(specs_dir / f"{s}_dataset_spec.json") for s in SPEC_SOURCES}
    for source, spec in specs.items():
        if spec.get("name") != source:
            raise ValueError(f"{specs_dir / f'{source}_dataset_spec.json'}: field 'name' is "
                             f"{spec.get('name')!r}, expected {source!r}")
    splits = {s: _read_json(specs_dir / f"{s}_splits.json") for s in SPLIT_SOURCES}
    labels = {s: _content_lines(specs_dir / f) for s, f in LABEL_FILES.items()}
    # Each list row is "<ImageNet file>  # <file in the other dataset>"; the first column is
    # what the converter leaves out.
    duplicates = {f: [line.split()[0] for line in _content_lines(specs_dir / f)]
                  for f in DUPLICATE_FILES}
    leaves = {s: _read_json(specs_dir / f"{s}_num_leaf_images.json") for s in LEAF_SOURCES}

    outputs = {
        "specs.json.gz": _gzip(_encode(specs)),
        "splits.json": _encode(splits),
        "labels.json": _encode(labels),
        "ilsvrc_duplicates.json": _encode(duplicates),
        "num_leaf_images.json": _encode(leaves),
    }
    outputs["NOTICE"] = _notice(specs_dir).encode("utf-8")
    return outputs


def _notice(specs_dir):
    lines = [
        "Benchmark facts of Meta-Dataset, shipped as package data of ctx_tf",
        "",
        "The files in this directory are derived by tools/derive_benchmark_facts.py from files of",
        f"the public repository {UPSTREAM_REPO} (https://github.com/{UPSTREAM_REPO}),",
        f"commit {UPSTREAM_COMMIT}, which is licensed under the Apache",
        "License, Version 2.0 (full text below). The derivation changes the form only (the",
        "official JSON files are gathered per kind and re-serialized compactly; the text lists",
        "keep their non-comment lines, the duplicate lists their first column); no value is",
        "changed. Do not edit these files; re-run the script.",
        "",
        "Derived file <- original path in the upstream repository (sha256 of the original file)",
    ]
    for output, inputs in OUTPUTS.items():
        lines.append(f"  {output}")
        for name, upstream in inputs.items():
            digest = hashlib.sha256((specs_dir / name).read_bytes()).hexdigest()
            lines.append(f"    <- {upstream} ({digest})")
    lines += ["", "-" * 79, ""]
    license_text = (specs_dir / LICENSE_FILE).read_text(encoding="utf-8")
    return "\n".join(lines) + "\n" + license_text.rstrip("\n") + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs_dir",
                        default=str(REPO_ROOT.parent / "shared" / "meta_dataset_specs"),
                        help="directory with the official files (default: %(default)s)")
    parser.add_argument("--output_dir", default=str(REPO_ROOT / "ctx_tf" / "data" / "facts"),
                        help="where the fact files are written (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        outputs = derive(args.specs_dir)
    except (OSError, ValueError) as e:
        print(f"derive_benchmark_facts: error: {e}", file=sys.stderr)
        return 1
    os.makedirs(args.output_dir, exist_ok=True)
    for name, data in outputs.items():
        path = atomic_write(os.path.join(args.output_dir, name), data)
        print(f"wrote {path} ({len(data):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
