"""Builds and writes ``dataset_spec.json`` for the three spec types, as the official converter does.

The builders return plain ordered dicts whose keys come in the official order, so that
:func:`spec_to_json` reproduces the official files byte for byte (up to the trailing newline
that those files gained in the official repository). :mod:`ctx_tf.data.dataset_spec` reads
them back.
"""

import collections
import json
import os

from ctx_tf.data.dataset_spec import DEFAULT_FILE_PATTERN, SPEC_FILENAME, SPLIT_NAMES, Split
from ctx_tf.data.writing.errors import SourceWriteError
from ctx_tf.files import atomic_write

def make_dataset_spec(name, path, class_names, images_per_class, classes_per_split):
    """A ``DatasetSpecification`` dict; ``classes_per_split`` is (TRAIN, VALID, TEST) counts."""
    _check_lengths(class_names, images_per_class, sum(classes_per_split))
    return collections.OrderedDict([
        ("name", name),
        ("classes_per_split", _split_dict(classes_per_split)),
        ("images_per_class", _id_dict(images_per_class)),
        ("class_names", _id_dict(class_names)),
        ("path", str(path)),
        ("file_pattern", DEFAULT_FILE_PATTERN),
        ("__class__", "DatasetSpecification"),
    ])


def make_bilevel_dataset_spec(name, path, superclass_names, superclasses_per_split,
                              classes_per_superclass, class_names, images_per_class):
    """A ``BiLevelDatasetSpecification`` dict (Omniglot's type)."""
    if len(superclass_names) != sum(superclasses_per_split) or len(
            classes_per_superclass) != len(superclass_names):
        raise SourceWriteError(
            f"{len(superclass_names)} superclass names, {len(classes_per_superclass)} "
            f"superclass sizes and superclasses_per_split {tuple(superclasses_per_split)} "
            "disagree")
    sizes = (classes_per_superclass.values() if isinstance(classes_per_superclass, dict)
             else classes_per_superclass)
    _check_lengths(class_names, images_per_class, sum(sizes))
    return collections.OrderedDict([
        ("name", name),
        ("superclasses_per_split", _split_dict(superclasses_per_split)),
        ("classes_per_superclass", _id_dict(classes_per_superclass)),
        ("images_per_class", _id_dict(images_per_class)),
        ("superclass_names", _id_dict(superclass_names)),
        ("class_names", _id_dict(class_names)),
        ("path", str(path)),
        ("file_pattern", DEFAULT_FILE_PATTERN),
        ("__class__", "BiLevelDatasetSpecification"),
    ])


def make_hierarchical_dataset_spec(name, path, split_subgraphs, images_per_class, class_names):
    """A ``HierarchicalDatasetSpecification`` dict (ImageNet's type).

    Args:
      split_subgraphs: split (name or :class:`Split`) -> the split's WordNet DAG, a sequence of
        nodes (dicts or ``dataset_spec.Node``) with ``wn_id``, ``words``, ``children_ids`` and
        ``parents_ids``, in file order; or a ``{wn_id: node}`` mapping.
      images_per_class: split -> ``{wn_id: count}`` for every node of the split (internal
        nodes hold the sum over the leaves they span).
      class_names: the leaf wn_ids by absolute class id (a sequence or an ``{id: wn_id}``
        mapping): each split's leaves sorted by wn_id, TRAIN first.

    Like the other builders, mappings keyed by class id are written in their own order.
    """
    subgraphs = _by_split(split_subgraphs, "split_subgraphs")
    counts = _by_split(images_per_class, "images_per_class")
    num_leaves = 0
    graphs = collections.OrderedDict()
    for split in SPLIT_NAMES:
        nodes = subgraphs[split]
        if isinstance(nodes, dict):
            nodes = list(nodes.values())
        graphs[split] = [_node_dict(node, split) for node in nodes]
        num_leaves += sum(1 for node in graphs[split] if not node["children_ids"])
        missing = [n["wn_id"] for n in graphs[split] if n["wn_id"] not in counts[split]]
        if missing:
            raise SourceWriteError(f"images_per_class.{split} has no count for {missing[:5]}")
    if len(class_names) != num_leaves:
        raise SourceWriteError(
            f"{len(class_names)} class names for {num_leaves} leaves of split_subgraphs")
    return collections.OrderedDict([
        ("name", name),
        ("split_subgraphs", graphs),
        ("images_per_class", collections.OrderedDict(
            (s, collections.OrderedDict((str(k), int(v)) for k, v in counts[s].items()))
            for s in SPLIT_NAMES)),
        ("class_names", _id_dict(class_names)),
        ("path", str(path)),
        ("file_pattern", DEFAULT_FILE_PATTERN),
        ("__class__", "HierarchicalDatasetSpecification"),
    ])


def _node_field(node, key):
    return node[key] if isinstance(node, dict) else getattr(node, key)


def spanning_counts(subgraph, leaf_images):
    """{wn_id: images of the leaves the node spans} for every node of one split's subgraph
    (nodes as dicts or `Node`s, or a {wn_id: node} mapping): the official hierarchical counts,
    where an internal node counts each distinct leaf below it once."""
    nodes = list(subgraph.values()) if isinstance(subgraph, dict) else list(subgraph)
    children = {_node_field(n, "wn_id"): list(_node_field(n, "children_ids")) for n in nodes}
    spans = {}

    def span(wn_id):
        if wn_id not in spans:
            kids = children.get(wn_id, [])
            spans[wn_id] = (frozenset([wn_id]) if not kids
                            else frozenset().union(*[span(k) for k in kids]))
        return spans[wn_id]

    return {wn_id: sum(leaf_images[leaf] for leaf in span(wn_id)) for wn_id in children}


def spec_to_json(spec) -> str:
    """The JSON text of a spec dict, formatted as the official converter formats it."""
    return json.dumps(spec, indent=2)


def write_dataset_spec(directory, spec):
    """Writes ``<directory>/dataset_spec.json`` atomically; returns its path."""
    return atomic_write(os.path.join(os.fspath(directory), SPEC_FILENAME), spec_to_json(spec))


def _node_dict(node, split):
    if not isinstance(node, dict):
        node = node._asdict()
    try:
        return collections.OrderedDict([
            ("wn_id", str(node["wn_id"])), ("words", str(node.get("words", ""))),
            ("children_ids", [str(c) for c in node["children_ids"]]),
            ("parents_ids", [str(p) for p in node["parents_ids"]])])
    except KeyError as e:
        raise SourceWriteError(f"split_subgraphs.{split}: node {dict(node)!r} lacks {e}") \
            from None


def _by_split(mapping, field):
    out = {(s.name if isinstance(s, Split) else str(s).upper()): v for s, v in mapping.items()}
    if sorted(out) != sorted(SPLIT_NAMES):
        raise SourceWriteError(f"{field} must have exactly the splits {list(SPLIT_NAMES)}, "
                               f"got {sorted(out)}")
    return out


def _check_lengths(class_names, images_per_class, num_classes):
    if len(class_names) != num_classes or len(images_per_class) != num_classes:
        raise SourceWriteError(
            f"{len(class_names)} class names and {len(images_per_class)} image counts for "
            f"{num_classes} classes")


def _split_dict(counts):
    return collections.OrderedDict((s, int(c)) for s, c in zip(SPLIT_NAMES, counts))


def _id_dict(values):
    """``{"0": v0, ...}`` of a sequence, or of an ``{id: value}`` mapping in its own order
    (the official converter wrote some maps, e.g. MSCOCO's image counts, unsorted)."""
    items = values.items() if isinstance(values, dict) else enumerate(values)
    out = collections.OrderedDict(
        (str(int(i)), v if isinstance(v, str) else int(v)) for i, v in items)
    if set(out) != {str(i) for i in range(len(out))}:
        raise SourceWriteError(f"ids {sorted(out, key=int)[:10]}... are not 0..{len(out) - 1}")
    return out
