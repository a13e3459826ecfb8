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
"""

import collections
import enum
import functools
import json
import os
import posixpath

SPEC_FILENAME = "dataset_spec.json"
# The only file pattern the official converter writes and the official reader can read.
DEFAULT_FILE_PATTERN = "{}.tfrecords"
# Accepted by the official loader (per-pool files) but not supported by any reader.
POOL_FILE_PATTERN = "{}_{}.tfrecords"


class Split(enum.Enum):
    """The three class splits of a source; values are the official enum values."""

    TRAIN = 0
    VALID = 1
    TEST = 2


class DatasetSpecError(ValueError):
    """A `dataset_spec.json` that is missing, malformed or inconsistent."""


def _as_split(split):
    if isinstance(split, Split):
        return split
    if isinstance(split, str):
        try:
            return Split[split.upper()]
        except KeyError:
            pass
    raise ValueError(f"split must be one of {[s.name for s in Split]} (or a Split), got {split!r}")


class _SpecBase:
    """Shared behaviour: file naming, class name lookup, per-split ranges."""

    def __init__(self, name, class_names, path, file_pattern, source):
        self.name = name
        self.class_names = class_names
        self.path = path
        self.file_pattern = file_pattern
        self._source = source  # what error messages name: the file the spec came from

    def _error(self, message):
        return DatasetSpecError(f"{self._source}: {message}")

    @property
    def num_classes(self):
        return len(self.class_names)

    @functools.cached_property
    def class_names_to_ids(self):
        return {name: class_id for class_id, name in self.class_names.items()}

    def get_classes(self, split):
        """The absolute class ids of `split`, a contiguous `range`."""
        split = _as_split(split)
        offset = sum(self.classes_per_split[s] for s in Split if s.value < split.value)
        return range(offset, offset + self.classes_per_split[split])

    def split_of_class(self, class_id):
        for split in Split:
            if class_id in self.get_classes(split):
                return split
        raise ValueError(f"{self.name}: class id {class_id} is not in [0, {self.num_classes})")

    def get_total_images_per_class(self, class_id, pool=None):
        """Official name of `num_images`."""
        if pool is not None:
            raise ValueError(f"{self.name}: example-level pools are not supported (pool={pool!r})")
        return self.num_images(class_id)

    def record_path(self, class_id):
        """Path of the TFRecord file of absolute class `class_id`."""
        if self.file_pattern != DEFAULT_FILE_PATTERN:
            raise ValueError(
                f"{self._source}: file_pattern {self.file_pattern!r} is not supported; only "
                f"{DEFAULT_FILE_PATTERN!r} (one file per class) is read"
            )
        return _join(self.path, self.file_pattern.format(class_id))

    def __repr__(self):
        counts = ", ".join(f"{s.name} {self.classes_per_split[s]}" for s in Split)
        return f"{type(self).__name__}(name={self.name!r}, classes: {counts}, path={self.path!r})"


class DatasetSpecification(_SpecBase):
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
        _check_contiguous(self, "class_names", self.class_names, total,
                          "the sum of classes_per_split")
        _check_contiguous(self, "images_per_class", self.images_per_class, total,
                          "the sum of classes_per_split")


class BiLevelDatasetSpecification(_SpecBase):
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
        split = _as_split(split)
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
        split = _as_split(split)
        if superclass_id not in self.get_superclasses(split):
            raise ValueError(
                f"{self.name}: superclass {superclass_id} is not in split {split.name}"
            )
        absolute = [self.first_class_of_superclass(superclass_id) + int(i) for i in class_inds]
        offset = self.get_classes(split).start
        return [a - offset for a in absolute], absolute

    def _validate(self):
        num_superclasses = sum(self.superclasses_per_split.values())
        _check_contiguous(self, "classes_per_superclass", self.classes_per_superclass,
                          num_superclasses, "the sum of superclasses_per_split")
        _check_contiguous(self, "superclass_names", self.superclass_names, num_superclasses,
                          "the sum of superclasses_per_split")
        total = sum(self.classes_per_superclass.values())
        _check_contiguous(self, "class_names", self.class_names, total,
                          "the sum of classes_per_superclass")
        _check_contiguous(self, "images_per_class", self.images_per_class, total,
                          "the sum of classes_per_superclass")


Node = collections.namedtuple("Node", ["wn_id", "words", "children_ids", "parents_ids"])


class HierarchicalDatasetSpecification(_SpecBase):
    """A source with one WordNet DAG per split (ImageNet); each split's classes are its leaves.

    Class ids of a split are its leaves sorted by WordNet id, after those of earlier splits.
    """

    def __init__(self, name, split_subgraphs, images_per_class, class_names, path,
                 file_pattern=DEFAULT_FILE_PATTERN, source="<dataset spec>"):
        super().__init__(name, class_names, path, file_pattern, source)
        # split -> {wn_id: Node}, in file order (sorted by wn_id in the official files).
        self.split_subgraphs = split_subgraphs
        # split -> {wn_id: number of images}; internal nodes hold the sum over their leaves.
        self.images_per_node = images_per_class
        self._validate()
        self.classes_per_split = {split: len(self.get_leaves(split)) for split in Split}

    def get_split_subgraph(self, split):
        """The split's DAG as `{wn_id: Node}`."""
        return self.split_subgraphs[_as_split(split)]

    def get_leaves(self, split):
        """The wn_ids of the split's leaves, sorted: position i is relative class id i."""
        graph = self.get_split_subgraph(split)
        return sorted(wn_id for wn_id, node in graph.items() if not node.children_ids)

    def get_internal_nodes(self, split):
        graph = self.get_split_subgraph(split)
        return sorted(wn_id for wn_id, node in graph.items() if node.children_ids)

    def get_spanning_leaves(self, split):
        """`{wn_id: frozenset of leaf wn_ids}` spanned by every node of the split's DAG."""
        split = _as_split(split)
        return self._spanning_leaves[split]

    @functools.cached_property
    def _spanning_leaves(self):
        result = {}
        for split, graph in self.split_subgraphs.items():
            spans = {}

            def span(wn_id, graph=graph, spans=spans):
                if wn_id not in spans:
                    node = graph[wn_id]
                    if not node.children_ids:
                        spans[wn_id] = frozenset([wn_id])
                    else:
                        spans[wn_id] = frozenset().union(*(span(c) for c in node.children_ids))
                return spans[wn_id]

            for wn_id in graph:
                span(wn_id)
            result[split] = spans
        return result

    def num_images(self, class_id):
        split = self.split_of_class(class_id)
        return self.images_per_node[split][self.class_names[class_id]]

    def _validate(self):
        seen = {}
        for split, graph in self.split_subgraphs.items():
            for wn_id, node in graph.items():
                if wn_id in seen and seen[wn_id] != split:
                    raise self._error(
                        f"split_subgraphs: node {wn_id} appears in both {seen[wn_id].name} "
                        f"and {split.name}"
                    )
                seen[wn_id] = split
                for field, others in (("children_ids", node.children_ids),
                                      ("parents_ids", node.parents_ids)):
                    for other in others:
                        if other not in graph:
                            raise self._error(
                                f"split_subgraphs.{split.name}: node {wn_id} lists {other} in "
                                f"{field}, but {other} is not a node of that split"
                            )
                for child in node.children_ids:
                    if wn_id not in graph[child].parents_ids:
                        raise self._error(
                            f"split_subgraphs.{split.name}: {child} is a child of {wn_id} but "
                            f"does not list it among its parents_ids"
                        )
            _check_acyclic(self, split, graph)
        total = sum(
            sum(1 for node in graph.values() if not node.children_ids)
            for graph in self.split_subgraphs.values()
        )
        _check_contiguous(self, "class_names", self.class_names, total,
                          "the number of leaves of split_subgraphs")
        offset = 0
        for split in Split:
            graph = self.split_subgraphs[split]
            counts = self.images_per_node[split]
            missing = sorted(set(graph) - set(counts))
            if missing:
                raise self._error(
                    f"images_per_class.{split.name} has no count for node(s) {missing[:5]}"
                )
            extra = sorted(set(counts) - set(graph))
            if extra:
                raise self._error(
                    f"images_per_class.{split.name} counts node(s) {extra[:5]} that are not in "
                    f"split_subgraphs.{split.name}"
                )
            leaves = sorted(w for w, n in graph.items() if not n.children_ids)
            for i, leaf in enumerate(leaves):
                if self.class_names[offset + i] != leaf:
                    raise self._error(
                        f"class_names[{offset + i}] is {self.class_names[offset + i]!r}, but "
                        f"leaf {i} of {split.name} (leaves sorted by WordNet id) is {leaf!r}"
                    )
            offset += len(leaves)
        for split in Split:
            spans = self.get_spanning_leaves(split)
            counts = self.images_per_node[split]
            for wn_id in self.get_internal_nodes(split):
                expected = sum(counts[leaf] for leaf in spans[wn_id])
                if counts[wn_id] != expected:
                    raise self._error(
                        f"images_per_class.{split.name}[{wn_id}] is {counts[wn_id]}, but the "
                        f"leaves it spans hold {expected} images"
                    )


def _check_contiguous(spec, field, mapping, expected_len, what):
    """Keys of `mapping` must be exactly 0..expected_len-1; counts must be ints >= 0."""
    keys = set(mapping)
    if keys != set(range(expected_len)):
        missing = sorted(set(range(expected_len)) - keys)
        extra = sorted(keys - set(range(expected_len)))
        detail = []
        if missing:
            detail.append(f"missing id(s) {missing[:5]}")
        if extra:
            detail.append(f"unexpected id(s) {extra[:5]}")
        raise spec._error(
            f"{field} has {len(mapping)} entries but {what} is {expected_len} "
            f"({'; '.join(detail)})"
        )
    if field in ("images_per_class", "classes_per_superclass"):
        for key, value in mapping.items():
            if isinstance(value, dict):
                raise spec._error(
                    f"{field}[{key}] is a per-pool dict; example-level pools are not supported"
                )
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise spec._error(f"{field}[{key}] must be a non-negative integer, got {value!r}")


def _check_acyclic(spec, split, graph):
    state = {}  # wn_id -> 1 while on the DFS stack, 2 when done
    for root in graph:
        if root in state:
            continue
        stack = [(root, iter(graph[root].children_ids))]
        state[root] = 1
        while stack:
            wn_id, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[wn_id] = 2
                stack.pop()
            elif state.get(child) == 1:
                raise spec._error(
                    f"split_subgraphs.{split.name} has a cycle through {wn_id} -> {child}"
                )
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(graph[child].children_ids)))


# ----------------------------------------------------------------------------- parsing


def _join(directory, filename):
    if "://" in directory:
        return posixpath.join(directory, filename)
    return os.path.join(directory, filename)


def _read_text(path):
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


def load_dataset_spec_file(spec_path, directory=None):
    """Reads one spec file; `path` becomes `directory` (default: the file's directory)."""
    spec_path = os.fspath(spec_path)
    text = _read_text(spec_path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetSpecError(f"{spec_path}: malformed JSON: {e}") from None
    if directory is None:
        directory = posixpath.dirname(spec_path) if "://" in spec_path else os.path.dirname(
            os.path.abspath(spec_path))
    return dataset_spec_from_dict(data, path=os.fspath(directory), source=spec_path)


def load_dataset_spec(directory, check_name=True):
    """Loads `<directory>/dataset_spec.json`, with `path` set to `directory`.

    Args:
      directory: a source's records directory (local or any `tf.io.gfile` filesystem).
      check_name: require the spec's `name` to equal the directory's base name, as the
        official consistency checker does (the pipelines find sources by that name).
    """
    directory = os.fspath(directory)
    stripped = directory.rstrip("/") or directory
    spec = load_dataset_spec_file(_join(stripped, SPEC_FILENAME), directory=stripped)
    basename = posixpath.basename(stripped) if "://" in stripped else os.path.basename(
        os.path.abspath(stripped))
    if check_name and spec.name != basename:
        raise DatasetSpecError(
            f"{spec._source}: field 'name' is {spec.name!r} but the directory is named "
            f"{basename!r}; a source's records must live in a directory named after it"
        )
    return spec
