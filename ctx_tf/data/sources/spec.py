"""The `dataset_spec.json` of a converted source: the plan's classes with the counts written."""

from ctx_tf.data import spec_writer

SPLITS = ("TRAIN", "VALID", "TEST")


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


def make_spec(plan, images_per_class, path):
    """The official spec dict of `plan` with `images_per_class` (records written, by class id)."""
    class_names = [c.name for c in plan.classes]
    fields = dict(plan.spec_fields)
    if plan.spec_type == "flat":
        return spec_writer.make_dataset_spec(
            plan.name, path, class_names, images_per_class,
            [plan.classes_per_split.get(s, 0) for s in SPLITS])
    if plan.spec_type == "bilevel":
        return spec_writer.make_bilevel_dataset_spec(
            plan.name, path, fields["superclass_names"],
            [fields["superclasses_per_split"].get(s, 0) for s in SPLITS],
            fields["classes_per_superclass"], class_names, images_per_class)
    # The plan's own images_per_class (from the listings) is replaced by what was written.
    subgraphs = fields["split_subgraphs"]
    leaf_images = dict(zip(class_names, images_per_class))
    counts = {getattr(split, "name", split): spanning_counts(nodes, leaf_images)
              for split, nodes in subgraphs.items()}
    return spec_writer.make_hierarchical_dataset_spec(plan.name, path, subgraphs, counts,
                                                      class_names)
