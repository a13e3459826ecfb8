"""The hierarchical spec type (ImageNet): one WordNet DAG per split; its leaves are the classes."""

import collections
import functools

from ctx_tf.data.dataset_spec.base import (DEFAULT_FILE_PATTERN, SpecBase, Split, as_split,
                                           check_contiguous)

Node = collections.namedtuple("Node", ["wn_id", "words", "children_ids", "parents_ids"])


class HierarchicalDatasetSpecification(SpecBase):
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
        return self.split_subgraphs[as_split(split)]

    def get_leaves(self, split):
        """The wn_ids of the split's leaves, sorted: position i is relative class id i."""
        graph = self.get_split_subgraph(split)
        return sorted(wn_id for wn_id, node in graph.items() if not node.children_ids)

    def get_internal_nodes(self, split):
        graph = self.get_split_subgraph(split)
        return sorted(wn_id for wn_id, node in graph.items() if node.children_ids)

    def get_spanning_leaves(self, split):
        """`{wn_id: frozenset of leaf wn_ids}` spanned by every node of the split's DAG."""
        split = as_split(split)
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
        check_contiguous(self, "class_names", self.class_names, total,
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
