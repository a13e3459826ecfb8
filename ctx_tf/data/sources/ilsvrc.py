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
"""

import functools
import os

from ctx_tf.data import facts
from ctx_tf.data.sources.spec import spanning_counts
from ctx_tf.data.sources.plan import ClassPlan, ImageRef, SourcePlan

NAMES = ("ilsvrc_2012", "ilsvrc_2012_v2")
RAW_EXPECTS = ("--raw_dir: the ILSVRC-2012 train folder (as the official "
               "--ilsvrc_2012_data_root); reads its 1000 <synset>/ folders of .JPEG images")
SPLITS = ("TRAIN", "VALID", "TEST")


def leaves(subgraph):
    """The WordNet ids of a subgraph's leaves (nodes without children), sorted."""
    return sorted(node["wn_id"] for node in subgraph if not node["children_ids"])


def official_classes(spec):
    """{split: [synset, ...]} of an official ILSVRC spec (a dict), in class-id order."""
    return {split: leaves(spec["split_subgraphs"][split]) for split in SPLITS}


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


def _list_class(class_dir, synset, duplicates):
    paths, skipped = [], []
    for filename in sorted(os.listdir(class_dir)):
        path = os.path.join(class_dir, filename)
        if f"{synset}/{filename}" in duplicates:
            skipped.append((path, "also in CUB-200 / Caltech-101 / Caltech-256 (official "
                                  "ImageNet duplicate lists)"))
        elif os.path.isdir(path):
            skipped.append((path, "a folder inside a synset folder"))
        elif not filename.lower().endswith("jpeg"):
            skipped.append((path, "not a .JPEG file; the official image count leaves it out"))
        else:
            paths.append(path)
    return paths, skipped


def _synset_folders(raw_dir, official):
    if not os.path.isdir(raw_dir):
        raise FileNotFoundError(f"{raw_dir} is missing: it should hold the ILSVRC-2012 train "
                                "folders, one <synset>/ folder per class")
    present = {e for e in os.listdir(raw_dir) if os.path.isdir(os.path.join(raw_dir, e))}
    unknown = sorted(present - set(official))
    if unknown:
        raise ValueError(f"{raw_dir}: {len(unknown)} folder(s) are not ILSVRC-2012 synsets "
                         f"of the official spec: {', '.join(unknown[:5])}")
    return present


def plan(raw_dir, name=NAMES[0], allow_missing_classes=False):
    """The official ILSVRC-2012 (`name` in NAMES) classes, splits and images of `raw_dir`.

    Every synset of the official spec must have its folder. With `allow_missing_classes`
    (small experiments, tests) the absent synsets are dropped instead: the classes are the
    present ones in the official order, and each split subgraph keeps only the nodes that are or
    span a present synset (`restrict`), so the written spec describes exactly those classes.
    """
    if name not in NAMES:
        raise KeyError(f"{name!r} is not an ILSVRC source; known: {', '.join(NAMES)}")
    spec = facts.dataset_spec(name)
    split_classes = official_classes(spec)
    official = [s for split in SPLITS for s in split_classes[split]]
    present = _synset_folders(raw_dir, official)
    missing = [s for s in official if s not in present]
    if missing and (not allow_missing_classes or len(missing) == len(official)):
        raise FileNotFoundError(
            f"{raw_dir} lacks {len(missing)} of the {len(official)} ILSVRC-2012 synset folders "
            f"of {name} (first: {', '.join(missing[:5])})")
    duplicates = facts.ilsvrc_duplicates()
    classes, skipped, counts = [], [], {}
    for synset in official:
        if synset not in present:
            continue
        paths, left_out = _list_class(os.path.join(raw_dir, synset), synset, duplicates)
        skipped.extend(left_out)
        counts[synset] = len(paths)
        classes.append(ClassPlan(name=synset, images=functools.partial(_refs, tuple(paths)),
                                 num_images=len(paths)))
    subgraphs = {split: restrict(spec["split_subgraphs"][split], set(counts))
                 for split in SPLITS}
    return SourcePlan(
        name=name,
        classes=tuple(classes),
        classes_per_split={split: sum(s in present for s in split_classes[split])
                           for split in SPLITS},
        spec_type="hierarchical",
        spec_fields={
            "split_subgraphs": subgraphs,
            "images_per_class": {split: spanning_counts(subgraphs[split], counts)
                                 for split in SPLITS},
        },
        skipped=tuple(skipped))
