"""Meta-Dataset source specifications: parse, validate and query `dataset_spec.json`.

The official converter writes one `dataset_spec.json` next to the per-class records of each
source. Three types exist, told apart by their `__class__` field:

* `DatasetSpecification`: classes split into contiguous TRAIN / VALID / TEST id ranges;
* `BiLevelDatasetSpecification` (Omniglot): classes grouped into superclasses (alphabets),
  superclasses split into contiguous ranges;
* `HierarchicalDatasetSpecification` (ImageNet): one WordNet DAG per split whose leaves are
  that split's classes.

`load_dataset_spec(directory)` reads and validates a spec, replacing its stored `path` with the
directory it came from (as the official loader does). Every spec answers `get_classes(split)`
and `num_images(class_id)`; the bi-level and hierarchical specs answer the questions their
samplers ask (superclasses of a split, WordNet graph, leaves spanned by each node).

The shared parts live in `spec_base`, the hierarchical type in `hierarchical_spec`; this
module holds the flat and bi-level types, the parser, the one loader and `use_ontologies`.
"""

import json
import os
import posixpath

from ctx_tf.data.hierarchical_spec import HierarchicalDatasetSpecification, Node
from ctx_tf.data.spec_base import (DEFAULT_FILE_PATTERN, POOL_FILE_PATTERN, SPEC_FILENAME,
                                   DatasetSpecError, SpecBase, Split, as_split,
                                   check_contiguous, join_path)



class DatasetSpecification(SpecBase):
    """A source whose classes are split into contiguous TRAIN / VALID / TEST ranges."""

    def __init__(self, name, classes_per_split, images_per_class, class_names, path,
                 file_pattern=DEFAULT_FILE_PATTERN, source="<dataset spec>"):
        super().__init__(name, class_names, path, file_pattern, source)
        self.classes_per_split = classes_per_split
        self.images_per_class = images_per_class
        self._validate()

    def num_images(self, class_id):
        try:
            return self.images_per_class[class_id]
        except KeyError:
            raise ValueError(
                f"{self.name}: class id {class_id} is not in [0, {self.num_classes})"
            ) from None

    def _validate(self):
        total = sum(self.classes_per_split.values())
        check_contiguous(self, "class_names", self.class_names, total,
                          "the sum of classes_per_split")
        check_contiguous(self, "images_per_class", self.images_per_class, total,
                          "the sum of classes_per_split")


class BiLevelDatasetSpecification(SpecBase):
    """A source whose classes belong to superclasses (Omniglot: characters of alphabets).

    Superclasses are split into contiguous ranges; the classes of superclass k are the
    `classes_per_superclass[k]` ids following those of superclasses 0..k-1.
    """

    def __init__(self, name, superclasses_per_split, classes_per_superclass, images_per_class,
                 superclass_names, class_names, path, file_pattern=DEFAULT_FILE_PATTERN,
                 source="<dataset spec>"):
        super().__init__(name, class_names, path, file_pattern, source)
        self.superclasses_per_split = superclasses_per_split
        self.classes_per_superclass = classes_per_superclass
        self.images_per_class = images_per_class
        self.superclass_names = superclass_names
        self._validate()
        self.classes_per_split = {
            split: sum(self.classes_per_superclass[s] for s in self.get_superclasses(split))
            for split in Split
        }

    def num_images(self, class_id):
        return DatasetSpecification.num_images(self, class_id)

    def get_superclasses(self, split):
        """The superclass ids of `split`, a contiguous `range`."""
        split = as_split(split)
        offset = sum(self.superclasses_per_split[s] for s in Split if s.value < split.value)
        return range(offset, offset + self.superclasses_per_split[split])

    def first_class_of_superclass(self, superclass_id):
        return sum(self.classes_per_superclass[k] for k in range(superclass_id))

    def get_classes_of_superclass(self, superclass_id):
        """The absolute class ids of one superclass, a contiguous `range`."""
        first = self.first_class_of_superclass(superclass_id)
        return range(first, first + self.classes_per_superclass[superclass_id])

    def get_class_ids_from_superclass_subclass_inds(self, split, superclass_id, class_inds):
        """Maps indices inside a superclass to (split-relative ids, absolute ids)."""
        split = as_split(split)
        if superclass_id not in self.get_superclasses(split):
            raise ValueError(
                f"{self.name}: superclass {superclass_id} is not in split {split.name}"
            )
        absolute = [self.first_class_of_superclass(superclass_id) + int(i) for i in class_inds]
        offset = self.get_classes(split).start
        return [a - offset for a in absolute], absolute

    def _validate(self):
        num_superclasses = sum(self.superclasses_per_split.values())
        check_contiguous(self, "classes_per_superclass", self.classes_per_superclass,
                          num_superclasses, "the sum of superclasses_per_split")
        check_contiguous(self, "superclass_names", self.superclass_names, num_superclasses,
                          "the sum of superclasses_per_split")
        total = sum(self.classes_per_superclass.values())
        check_contiguous(self, "class_names", self.class_names, total,
                          "the sum of classes_per_superclass")
        check_contiguous(self, "images_per_class", self.images_per_class, total,
                          "the sum of classes_per_superclass")


# ----------------------------------------------------------------------------- parsing


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
    missing = [s.name for s in Split if s.name not in mapping]
    if missing:
        raise DatasetSpecError(f"{source}: field {field!r} has no entry for {missing}")
    extra = sorted(set(mapping) - {s.name for s in Split})
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
