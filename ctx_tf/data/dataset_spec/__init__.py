"""Meta-Dataset source specifications: parse, validate and query `dataset_spec.json`.

The official converter writes one `dataset_spec.json` next to the per-class records of each
source. Three types exist, told apart by their `__class__` field:

* `DatasetSpecification` (`flat`): classes split into contiguous TRAIN / VALID / TEST id ranges;
* `BiLevelDatasetSpecification` (`bilevel`, Omniglot): classes grouped into superclasses
  (alphabets), superclasses split into contiguous ranges;
* `HierarchicalDatasetSpecification` (`hierarchical`, ImageNet): one WordNet DAG per split
  whose leaves are that split's classes.

`load_dataset_spec(directory)` (`loading`) reads and validates a spec, replacing its stored
`path` with the directory it came from (as the official loader does). Every spec answers
`get_classes(split)` and `num_images(class_id)`; the bi-level and hierarchical specs answer the
questions their samplers ask (superclasses of a split, WordNet graph, leaves spanned by each
node). What the types share (`Split`, file naming, `DatasetSpecError`) is in `base`. Specs are
written by `ctx_tf.data.writing.spec_writer`.
"""

from ctx_tf.data.dataset_spec.base import (DEFAULT_FILE_PATTERN, POOL_FILE_PATTERN,
                                           SPEC_FILENAME, SPLIT_NAMES, DatasetSpecError, Split,
                                           as_split)
from ctx_tf.data.dataset_spec.bilevel import BiLevelDatasetSpecification
from ctx_tf.data.dataset_spec.flat import DatasetSpecification
from ctx_tf.data.dataset_spec.hierarchical import HierarchicalDatasetSpecification, Node
from ctx_tf.data.dataset_spec.loading import (dataset_spec_from_dict, load_dataset_spec,
                                              use_ontologies)

__all__ = [
    "DEFAULT_FILE_PATTERN", "POOL_FILE_PATTERN", "SPEC_FILENAME", "SPLIT_NAMES",
    "BiLevelDatasetSpecification", "DatasetSpecError", "DatasetSpecification",
    "HierarchicalDatasetSpecification", "Node", "Split", "as_split", "dataset_spec_from_dict",
    "load_dataset_spec", "use_ontologies",
]
