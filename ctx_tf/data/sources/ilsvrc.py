"""ILSVRC-2012 (training set): 1000 synsets under the official WordNet split subgraphs.

Official rules (ImageNetConverter, ImageNetConverterV2): the classes are the leaves of the
split subgraphs, sorted by WordNet id within TRAIN, then VALID, then TEST (v2 puts the whole
graph, so every class, in TRAIN). The subgraphs come from the official spec (the WordNet files
the official code builds them from are no longer online). A class's images are its folder's
files sorted by name, minus the files of the three ImageNet_*_duplicates lists (images that also
occur in CUB-200 / Caltech-101 / Caltech-256); the spec counts only names ending in "jpeg" (any
case), so other files are left out here too. `images_per_class` of the spec maps every node of a
split's subgraph to the images of the leaves it spans, from those listings. Nothing is cropped;
the one PNG and the CMYK JPEGs of the download are re-encoded by the engine's general rule.

Two raw forms give the same records: the extracted train folder (`<synset>/` folders, what the
official converter reads) and the download ILSVRC2012_img_train.tar itself, whose 1000
`<synset>.tar` members are read in place: planning indexes the offset and size of every image
(`archives.tar_of_tars`, headers only) and the plan carries them, so a worker reads an image
with one positioned read. A `<synset>.tar` that cannot be listed is an error naming it.
"""

import functools
import os
import re

from ctx_tf.data import facts
from ctx_tf.data.dataset_spec import SPLIT_NAMES
from ctx_tf.data.writing import archives
from ctx_tf.data.writing.errors import MissingRawFileError, SourceConversionError
from ctx_tf.data.writing.plan import ClassPlan, ImageRef, SourcePlan
from ctx_tf.data.writing.spec_writer import spanning_counts

NAMES = ("ilsvrc_2012", "ilsvrc_2012_v2")
TRAIN_TAR = "ILSVRC2012_img_train.tar"
RAW_EXPECTS = ("--raw_dir: the ILSVRC-2012 train folder (as the official "
               "--ilsvrc_2012_data_root) with its 1000 <synset>/ folders of .JPEG images, or "
               f"the download {TRAIN_TAR} itself (its 1000 <synset>.tar read in place)")


def leaves(subgraph):
    """The WordNet ids of a subgraph's leaves (nodes without children), sorted."""
    return sorted(node["wn_id"] for node in subgraph if not node["children_ids"])


def official_classes(spec):
    """{split: [synset, ...]} of an official ILSVRC spec (a dict), in class-id order."""
    return {split: leaves(spec["split_subgraphs"][split]) for split in SPLIT_NAMES}


def restrict(subgraph, kept_leaves):
    """The nodes of `subgraph` that are or span a kept leaf, with links to dropped nodes cut."""
    by_id = {node["wn_id"]: node for node in subgraph}
    spans = {}

    def spans_kept(wn_id):
        if wn_id not in spans:
            children = by_id[wn_id]["children_ids"]
            spans[wn_id] = (wn_id in kept_leaves if not children
                            else any([spans_kept(c) for c in children]))
        return spans[wn_id]

    kept = {wn_id for wn_id in by_id if spans_kept(wn_id)}
    return [dict(node, children_ids=[c for c in node["children_ids"] if c in kept],
                 parents_ids=[p for p in node["parents_ids"] if p in kept])
            for node in subgraph if node["wn_id"] in kept]


def _refs(paths):
    for path in paths:
        yield ImageRef(path)


def _tar_refs(tar_path, synset, names, offsets, sizes):
    for name, offset, size in zip(names, offsets, sizes):
        yield ImageRef(tar_path, member=f"{synset}.tar/{name}", span=(int(offset), int(size)))


def _select(synset, files, folders, duplicates, where, unit):
    """The image names of a class by the official rules, sorted, and the skipped
    `(where(name), reason)`: `files` and `folders` are the names of the files and folders
    in the synset's `unit` (folder or tar)."""
    kept, skipped = [], []
    for name in sorted(set(files) | set(folders)):
        if f"{synset}/{name}" in duplicates:
            skipped.append((where(name), "also in CUB-200 / Caltech-101 / Caltech-256 "
                                         "(official ImageNet duplicate lists)"))
        elif name in folders:
            skipped.append((where(name), f"a folder inside a synset {unit}"))
        elif not name.lower().endswith("jpeg"):
            skipped.append((where(name), "not a .JPEG file; the official image count leaves "
                                         "it out"))
        else:
            kept.append(name)
    return kept, skipped


class _Folders:
    """The extracted train folder: one `<synset>/` folder of images per class."""

    unit = "folder"

    def __init__(self, raw_dir, official):
        if not os.path.isdir(raw_dir):
            raise MissingRawFileError(
                f"{raw_dir} is missing: it should hold the ILSVRC-2012 train folders, one "
                f"<synset>/ folder per class, or be the {TRAIN_TAR} download")
        self.raw_dir = raw_dir
        present = {e for e in os.listdir(raw_dir) if os.path.isdir(os.path.join(raw_dir, e))}
        unknown = sorted(present - set(official))
        if unknown:
            raise SourceConversionError(
                f"{raw_dir}: {len(unknown)} folder(s) are not ILSVRC-2012 synsets of the "
                f"official spec: {', '.join(unknown[:5])}")
        self.present = present

    def where(self, synset):
        return lambda name: os.path.join(self.raw_dir, synset, name)

    def images(self, synset, duplicates):
        folder = os.path.join(self.raw_dir, synset)
        names = os.listdir(folder)
        folders = {n for n in names if os.path.isdir(os.path.join(folder, n))}
        kept, skipped = _select(synset, set(names) - folders, folders, duplicates,
                                self.where(synset), self.unit)
        paths = tuple(os.path.join(folder, n) for n in kept)
        return functools.partial(_refs, paths), len(paths), skipped


class _Tar:
    """ILSVRC2012_img_train.tar read in place: 1000 `<synset>.tar` members of images."""

    unit = "tar"

    def __init__(self, tar_path, official):
        self.tar_path = tar_path
        members = archives.tar_of_tars(
            tar_path, r"n\d{8}\.tar", "<synset>.tar",
            f"{TRAIN_TAR}, whose members are the 1000 <synset>.tar of the training images")
        self.entries = {name[:-len(".tar")]: entries for name, entries in members.items()}
        unknown = sorted(set(self.entries) - set(official))
        if unknown:
            raise SourceConversionError(
                f"{tar_path}: {len(unknown)} member(s) are not ILSVRC-2012 synsets of the "
                f"official spec: {', '.join(s + '.tar' for s in unknown[:5])}")
        self.present = set(self.entries)

    def where(self, synset):
        return lambda name: f"{self.tar_path}:{synset}.tar/{name}"

    def images(self, synset, duplicates):
        entries = self.entries[synset]
        # As extracted: the last of equal names; what lies in subfolders is a folder's.
        index = {name: i for i, name in enumerate(entries.names) if "/" not in name}
        folders = {n.split("/")[0] for n in entries.names + entries.folders
                   if "/" in n or n in entries.folders}
        kept, skipped = _select(synset, index, folders, duplicates, self.where(synset),
                                self.unit)
        rows = [index[n] for n in kept]
        images = functools.partial(_tar_refs, self.tar_path, synset, tuple(kept),
                                   entries.offsets[rows], entries.sizes[rows])
        return images, len(kept), skipped


def _tar_path(raw_dir):
    """The train tar to read in place: `raw_dir` itself, or the download in a folder without
    synset folders; None to read the folders."""
    if os.path.isfile(raw_dir):
        return raw_dir
    inside = os.path.join(raw_dir, TRAIN_TAR)
    if os.path.isfile(inside) and not any(
            e.is_dir() and re.fullmatch(r"n\d{8}", e.name) for e in os.scandir(raw_dir)):
        return inside
    return None


def _raw_form(raw_dir, official):
    tar_path = _tar_path(raw_dir)
    return _Folders(raw_dir, official) if tar_path is None else _Tar(tar_path, official)


def describe_raw(raw_dir):
    """One line naming the raw form read."""
    tar_path = _tar_path(os.fspath(raw_dir))
    if tar_path is None:
        return f"ILSVRC-2012 train folders in {raw_dir}"
    return (f"ILSVRC-2012 train tar {tar_path} (read in place; indexing the images of its "
            "synset tars)")


def plan(raw_dir, name=NAMES[0], allow_missing_classes=False):
    """The official ILSVRC-2012 (`name` in NAMES) classes, splits and images of `raw_dir`.

    `raw_dir` is the extracted train folder, or the download ILSVRC2012_img_train.tar read in
    place (the records are the same). Every synset of the official spec must have its folder
    (or `<synset>.tar`). With `allow_missing_classes`
    (small experiments, tests) the absent synsets are dropped instead: the classes are the
    present ones in the official order, and each split subgraph keeps only the nodes that are or
    span a present synset (`restrict`), so the written spec describes exactly those classes.
    """
    if name not in NAMES:
        raise KeyError(f"{name!r} is not an ILSVRC source; known: {', '.join(NAMES)}")
    spec = facts.dataset_spec(name)
    split_classes = official_classes(spec)
    official = [s for split in SPLIT_NAMES for s in split_classes[split]]
    form = _raw_form(os.fspath(raw_dir), official)
    present = form.present
    missing = [s for s in official if s not in present]
    if missing and (not allow_missing_classes or len(missing) == len(official)):
        raise MissingRawFileError(
            f"{raw_dir} lacks {len(missing)} of the {len(official)} ILSVRC-2012 synset "
            f"{form.unit}s of {name} (first: {', '.join(missing[:5])})")
    duplicates = facts.ilsvrc_duplicates()
    classes, skipped, counts = [], [], {}
    for synset in official:
        if synset not in present:
            continue
        images, count, left_out = form.images(synset, duplicates)
        skipped.extend(left_out)
        counts[synset] = count
        classes.append(ClassPlan(name=synset, images=images, num_images=count))
    subgraphs = {split: restrict(spec["split_subgraphs"][split], set(counts))
                 for split in SPLIT_NAMES}
    return SourcePlan(
        name=name,
        classes=tuple(classes),
        classes_per_split={split: sum(s in present for s in split_classes[split])
                           for split in SPLIT_NAMES},
        spec_type="hierarchical",
        spec_fields={
            "split_subgraphs": subgraphs,
            "images_per_class": {split: spanning_counts(subgraphs[split], counts)
                                 for split in SPLIT_NAMES},
        },
        skipped=tuple(skipped))
