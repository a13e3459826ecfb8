"""The `dataset_spec.json` of a converted source: the plan's classes with the counts written."""

from ctx_tf.data.dataset_spec import SPLIT_NAMES
from ctx_tf.data.writing import spec_writer

def make_spec(plan, images_per_class, path):
    """The official spec dict of `plan` with `images_per_class` (records written, by class id)."""
    class_names = [c.name for c in plan.classes]
    fields = dict(plan.spec_fields)
    if plan.spec_type == "flat":
        return spec_writer.make_dataset_spec(
            plan.name, path, class_names, images_per_class,
            [plan.classes_per_split.get(s, 0) for s in SPLIT_NAMES])
    if plan.spec_type == "bilevel":
        return spec_writer.make_bilevel_dataset_spec(
            plan.name, path, fields["superclass_names"],
            [fields["superclasses_per_split"].get(s, 0) for s in SPLIT_NAMES],
            fields["classes_per_superclass"], class_names, images_per_class)
    # The plan's own images_per_class (from the listings) is replaced by what was written.
    subgraphs = fields["split_subgraphs"]
    leaf_images = dict(zip(class_names, images_per_class))
    counts = {getattr(split, "name", split): spec_writer.spanning_counts(nodes, leaf_images)
              for split, nodes in subgraphs.items()}
    return spec_writer.make_hierarchical_dataset_spec(plan.name, path, subgraphs, counts,
                                                      class_names)
