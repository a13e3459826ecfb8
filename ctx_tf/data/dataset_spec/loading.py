"""Reading a `dataset_spec.json`: parse and validate it into one of the three spec types.

`load_dataset_spec(directory)` reads and validates a spec, replacing its stored `path` with the
directory it came from (as the official loader does); `dataset_spec_from_dict` builds a spec
from the decoded JSON. `use_ontologies` says which class hierarchy a source's episodes follow.
"""

import json
import os
import posixpath

from ctx_tf.data.dataset_spec.base import (DEFAULT_FILE_PATTERN, POOL_FILE_PATTERN, SPEC_FILENAME,
                                           SPLIT_NAMES, DatasetSpecError, Split, join_path)
from ctx_tf.data.dataset_spec.bilevel import BiLevelDatasetSpecification
from ctx_tf.data.dataset_spec.flat import DatasetSpecification
from ctx_tf.data.dataset_spec.hierarchical import HierarchicalDatasetSpecification, Node


def _read_text(path):
    try:
        return _read_file(path)
    except UnicodeDecodeError as e:
        raise DatasetSpecError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _read_file(path):
    if "://" in path:  # any filesystem tf.io.gfile reads (gs://, ...)
        import tensorflow as tf

        if not tf.io.gfile.exists(path):
            raise DatasetSpecError(f"{path}: no such file")
        with tf.io.gfile.GFile(path, "r") as f:
            return f.read()
    try:
        with open(path, "r", encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise DatasetSpecError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DatasetSpecError(f"{path}: is a directory, expected {SPEC_FILENAME}") from None


def _field(data, key, source, kind):
    if key not in data:
        raise DatasetSpecError(f"{source}: missing field {key!r}")
    value = data[key]
    if not isinstance(value, kind):
        raise DatasetSpecError(
            f"{source}: field {key!r} must be a {kind.__name__}, got {type(value).__name__}"
        )
    return value


def _int_keys(mapping, source, field):
    result = {}
    for key, value in mapping.items():
        try:
            result[int(key)] = value
        except (TypeError, ValueError):
            raise DatasetSpecError(
                f"{source}: field {field!r} has key {key!r}, expected an integer id"
            ) from None
    return result


def _per_split(mapping, source, field):
    missing = [name for name in SPLIT_NAMES if name not in mapping]
    if missing:
        raise DatasetSpecError(f"{source}: field {field!r} has no entry for {missing}")
    extra = sorted(set(mapping) - set(SPLIT_NAMES))
    if extra:
        raise DatasetSpecError(f"{source}: field {field!r} has unknown split(s) {extra}")
    return {split: mapping[split.name] for split in Split}


def _split_counts(mapping, source, field):
    result = _per_split(mapping, source, field)
    for split, value in result.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise DatasetSpecError(
                f"{source}: {field}.{split.name} must be a non-negative integer, got {value!r}"
            )
    return result


def _parse_nodes(nodes, source, split):
    graph = {}
    if not isinstance(nodes, list):
        raise DatasetSpecError(f"{source}: split_subgraphs.{split.name} must be a list of nodes")
    for i, node in enumerate(nodes):
        try:
            wn_id = node["wn_id"]
            parsed = Node(wn_id, node.get("words", ""), tuple(node["children_ids"]),
                          tuple(node["parents_ids"]))
        except (KeyError, TypeError) as e:
            raise DatasetSpecError(
                f"{source}: split_subgraphs.{split.name}[{i}] is not a node with wn_id, "
                f"children_ids and parents_ids ({e!r})"
            ) from None
        if wn_id in graph:
            raise DatasetSpecError(
                f"{source}: split_subgraphs.{split.name} lists node {wn_id} twice"
            )
        graph[wn_id] = parsed
    return graph


def dataset_spec_from_dict(data, path=None, source="<dataset spec>"):
    """Builds a validated spec from the decoded JSON object of a `dataset_spec.json`."""
    if not isinstance(data, dict):
        raise DatasetSpecError(f"{source}: expected a JSON object, got {type(data).__name__}")
    kind = data.get("__class__")
    name = _field(data, "name", source, str)
    class_names = _int_keys(_field(data, "class_names", source, dict), source, "class_names")
    file_pattern = data.get("file_pattern", DEFAULT_FILE_PATTERN)
    if file_pattern not in (DEFAULT_FILE_PATTERN, POOL_FILE_PATTERN):
        raise DatasetSpecError(
            f"{source}: field 'file_pattern' is {file_pattern!r}, expected "
            f"{DEFAULT_FILE_PATTERN!r}"
        )
    if path is None:
        path = data.get("path", "")
    common = dict(name=name, class_names=class_names, path=path, file_pattern=file_pattern,
                  source=source)
    if kind == "DatasetSpecification":
        return DatasetSpecification(
            classes_per_split=_split_counts(
                _field(data, "classes_per_split", source, dict), source, "classes_per_split"),
            images_per_class=_int_keys(
                _field(data, "images_per_class", source, dict), source, "images_per_class"),
            **common)
    if kind == "BiLevelDatasetSpecification":
        return BiLevelDatasetSpecification(
            superclasses_per_split=_split_counts(
                _field(data, "superclasses_per_split", source, dict), source,
                "superclasses_per_split"),
            classes_per_superclass=_int_keys(
                _field(data, "classes_per_superclass", source, dict), source,
                "classes_per_superclass"),
            images_per_class=_int_keys(
                _field(data, "images_per_class", source, dict), source, "images_per_class"),
            superclass_names=_int_keys(
                _field(data, "superclass_names", source, dict), source, "superclass_names"),
            **common)
    if kind == "HierarchicalDatasetSpecification":
        subgraphs = _per_split(_field(data, "split_subgraphs", source, dict), source,
                               "split_subgraphs")
        counts = _per_split(_field(data, "images_per_class", source, dict), source,
                            "images_per_class")
        for split, value in counts.items():
            if not isinstance(value, dict):
                raise DatasetSpecError(
                    f"{source}: images_per_class.{split.name} must map wn_ids to counts"
                )
            for wn_id, count in value.items():
                if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                    raise DatasetSpecError(
                        f"{source}: images_per_class.{split.name}[{wn_id}] must be a "
                        f"non-negative integer, got {count!r}"
                    )
        return HierarchicalDatasetSpecification(
            split_subgraphs={s: _parse_nodes(subgraphs[s], source, s) for s in Split},
            images_per_class=counts,
            **common)
    known = ["DatasetSpecification", "BiLevelDatasetSpecification",
             "HierarchicalDatasetSpecification"]
    raise DatasetSpecError(f"{source}: unknown '__class__' {kind!r}; expected one of {known}")


def load_dataset_spec(directory, check_name=True, spec_file=None):
    """Loads `<directory>/dataset_spec.json`, with `path` set to `directory`.

    Args:
      directory: a source's records directory (local or any `tf.io.gfile` filesystem).
      check_name: require the spec's `name` to equal the directory's base name, as the
        official consistency checker does (the pipelines find sources by that name).
      spec_file: read this spec file instead (e.g. an official spec describing records that
        live in `directory`).
    """
    directory = os.fspath(directory)
    stripped = directory.rstrip("/") or directory
    spec_path = join_path(stripped, SPEC_FILENAME) if spec_file is None else os.fspath(spec_file)
    text = _read_text(spec_path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetSpecError(f"{spec_path}: malformed JSON: {e}") from None
    spec = dataset_spec_from_dict(data, path=stripped, source=spec_path)
    basename = posixpath.basename(stripped) if "://" in stripped else os.path.basename(
        os.path.abspath(stripped))
    if check_name and spec.name != basename:
        raise DatasetSpecError(
            f"{spec_path}: field 'name' is {spec.name!r} but the directory is named "
            f"{basename!r}; a source's records must live in a directory named after it"
        )
    return spec


def use_ontologies(dataset_name, ignore_dag_ontology=False, ignore_bilevel_ontology=False):
    """`(use_dag_ontology, use_bilevel_ontology)` for a source, as the official trainer decides.

    DAG (WordNet) sampling for every `ilsvrc_2012*` source, bi-level (alphabet) sampling for
    `omniglot`, uniform class sampling otherwise; the ignore flags turn them off.
    """
    use_dag = dataset_name.startswith("ilsvrc_2012") and not ignore_dag_ontology
    use_bilevel = dataset_name == "omniglot" and not ignore_bilevel_ontology
    return use_dag, use_bilevel
