"""Episode descriptions: which classes an episode has and how many support/query images each.

`EpisodeDescriptionSampler` reproduces the official Meta-Dataset sampler draw for draw: given
a `numpy.random.RandomState` in the same state, it makes the same calls (`random_sample`,
`randint`, `permutation`, `uniform`) in the same order and returns the same descriptions. The
official code draws DAG nodes with `RandomState.choice` on a ragged list, which fails on
NumPy >= 1.24; the equivalent `randint` draw used here consumes the generator identically.

A description is a tuple of `(relative_class_id, num_support, num_query)` triples, relative
ids counting from the first class of the split.
"""

import numpy as np

from ctx_tf.data import dataset_spec as dataset_spec_lib
from ctx_tf.data.sampling.draws import (compute_num_query, sample_class_ids_uniformly,
                                        sample_num_support_per_class, sample_num_ways_uniformly,
                                        sample_support_set_size)

# Module-level generator that seeds every sampler built without an explicit `rng`, as in the
# official code (unseeded: official episodes are not reproducible unless it is reseeded).
RNG = np.random.RandomState(seed=None)

# An internal WordNet node is eligible for a DAG episode iff it spans at least `min_ways` and at
# most this many leaves: the smallest bound under which every ImageNet TRAIN leaf is reachable.
MAX_SPANNING_LEAVES_ELIGIBLE = 392


class EpisodeDescriptionSampler:
    """Samples episode descriptions for one split of one source.

    Args:
      dataset_spec: a spec from `ctx_tf.data.dataset_spec`.
      split: `Split` (or its name).
      episode_descr_config: an `EpisodeDescriptionConfig`.
      use_dag_hierarchy: draw classes from WordNet nodes (ImageNet; hierarchical spec).
      use_bilevel_hierarchy: draw classes from one superclass (Omniglot; bi-level spec).
      ignore_hierarchy_probability: fraction of episodes that ignore the hierarchy and draw
        classes uniformly. The hierarchy coin is drawn even when this is 0, as officially.
      rng: a `numpy.random.RandomState`, an int seed, or None (seeded by one draw from the
        module-level `RNG`, as the official sampler is).
      use_all_classes: every class of the split, in order, in every episode.
    """

    def __init__(self, dataset_spec, split, episode_descr_config, use_dag_hierarchy=False,
                 use_bilevel_hierarchy=False, ignore_hierarchy_probability=0.0, rng=None,
                 use_all_classes=False):
        if rng is None:
            rng = np.random.RandomState(seed=RNG.randint(0, 2**32, size=None, dtype="uint32"))
        elif not isinstance(rng, np.random.RandomState):
            rng = np.random.RandomState(seed=rng)
        self._rng = rng
        config = episode_descr_config
        self.dataset_spec = dataset_spec
        self.split = dataset_spec_lib.as_split(split)
        self.episode_descr_config = config
        if not 0.0 <= ignore_hierarchy_probability <= 1.0:
            raise ValueError(
                f"ignore_hierarchy_probability must be in [0, 1], got "
                f"{ignore_hierarchy_probability!r}"
            )
        self.ignore_hierarchy_probability = ignore_hierarchy_probability
        self.use_all_classes = use_all_classes
        self.num_ways = config.num_ways
        self.num_support = config.num_support
        self.num_query = config.num_query
        self.min_ways = config.min_ways
        self.max_ways_upper_bound = config.max_ways_upper_bound
        self.max_num_query = config.max_num_query
        self.max_support_set_size = config.max_support_set_size
        self.max_support_size_contrib_per_class = config.max_support_size_contrib_per_class
        self.min_log_weight = config.min_log_weight
        self.max_log_weight = config.max_log_weight
        self.min_examples_in_class = config.min_examples_in_class

        self.class_set = list(dataset_spec.get_classes(self.split))
        self.num_classes = len(self.class_set)
        where = f"split {self.split.name} of {dataset_spec.name}"
        if self.num_classes == 0:
            raise ValueError(f"{where} has no classes; no episode can be sampled from it")
        self._images = {c: dataset_spec.num_images(c) for c in self.class_set}
        self._filtered_class_set = [
            c for c in self.class_set if self._images[c] >= self.min_examples_in_class
        ]
        self.num_filtered_classes = len(self._filtered_class_set)
        if self.min_ways and self.num_filtered_classes < self.min_ways:
            raise ValueError(
                f"min_ways is {self.min_ways}, but {where} has only "
                f"{self.num_filtered_classes} classes with at least {self.min_examples_in_class} "
                f"images ({self.num_classes} in all)"
            )
        if self.num_ways is not None and self.num_ways > self.num_filtered_classes:
            raise ValueError(
                f"num_ways is {self.num_ways}, but {where} has only "
                f"{self.num_filtered_classes} usable classes"
            )
        if use_all_classes:
            if self.num_classes != self.num_filtered_classes:
                raise ValueError(
                    "use_all_classes cannot be combined with a min_examples_in_class that "
                    "excludes classes"
                )
            self.num_ways = self.num_classes

        self.use_dag_hierarchy = use_dag_hierarchy and not config.ignore_dag_ontology
        self.use_bilevel_hierarchy = (use_bilevel_hierarchy
                                      and not config.ignore_bilevel_ontology)
        if self.use_bilevel_hierarchy:
            self._init_bilevel(where)
        elif self.use_dag_hierarchy:
            self._init_dag(where)

    def _init_bilevel(self, where):
        spec = self.dataset_spec
        if self.num_ways is not None:
            raise ValueError("bi-level sampling is incompatible with a fixed num_ways; set "
                             "EpisodeDescriptionConfig.ignore_bilevel_ontology = True")
        if self.min_examples_in_class > 0:
            raise ValueError("bi-level sampling is incompatible with min_examples_in_class > 0")
        if self.use_dag_hierarchy:
            raise ValueError("bi-level and DAG sampling cannot be combined")
        if not isinstance(spec, dataset_spec_lib.BiLevelDatasetSpecification):
            raise ValueError(f"bi-level sampling needs a BiLevelDatasetSpecification; "
                             f"{spec.name} has a {type(spec).__name__}")
        self.superclass_set = []
        for s in spec.get_superclasses(self.split):
            if spec.classes_per_superclass[s] < self.min_ways:
                raise ValueError(
                    f"superclass {s} ({spec.superclass_names.get(s)}) of {where} has "
                    f"{spec.classes_per_superclass[s]} classes < min_ways={self.min_ways}"
                )
            self.superclass_set.append(s)
        if not self.superclass_set:
            raise ValueError(f"{where} has no superclasses")

    def _init_dag(self, where):
        spec = self.dataset_spec
        if self.num_ways is not None:
            raise ValueError("DAG sampling is incompatible with a fixed num_ways; set "
                             "EpisodeDescriptionConfig.ignore_dag_ontology = True")
        if not isinstance(spec, dataset_spec_lib.HierarchicalDatasetSpecification):
            raise ValueError(f"DAG sampling needs a HierarchicalDatasetSpecification; "
                             f"{spec.name} has a {type(spec).__name__}")
        spans = spec.get_spanning_leaves(self.split)
        offset = self.class_set[0]
        usable = set(self._filtered_class_set)
        self.span_leaves_rel = []
        # Internal nodes and their leaves in wn_id order, so the list (and hence which node a
        # given draw selects) is the official one.
        for wn_id in spec.get_internal_nodes(self.split):
            ids_rel = []
            for leaf in sorted(spans[wn_id]):
                absolute = spec.class_names_to_ids[leaf]
                if absolute in usable:
                    ids_rel.append(absolute - offset)
            if self.min_ways <= len(ids_rel) <= MAX_SPANNING_LEAVES_ELIGIBLE:
                self.span_leaves_rel.append(ids_rel)
        if not self.span_leaves_rel:
            raise ValueError(
                f"no WordNet node of {where} spans between min_ways={self.min_ways} and "
                f"{MAX_SPANNING_LEAVES_ELIGIBLE} usable leaves"
            )

    def _keep_hierarchy(self):
        # The official code flips this coin with RandomState.choice([True, False], p=...):
        # one uniform u, hierarchy kept iff u falls below the normalized first cdf entry.
        q = self.ignore_hierarchy_probability
        p_keep, p_ignore = (1.0 - q, q) if q else (1.0, 0.0)
        return self._rng.random_sample() < p_keep / (p_keep + p_ignore)

    def sample_class_ids(self):
        """Relative class ids of one episode (in episode order)."""
        if self.use_dag_hierarchy and self._keep_hierarchy():
            classes = self.span_leaves_rel[self._rng.randint(0, len(self.span_leaves_rel))]
            classes = np.asarray(classes)
            if len(classes) > self.max_ways_upper_bound:
                classes = classes[
                    self._rng.permutation(len(classes))[:self.max_ways_upper_bound]]
            return classes
        if self.use_bilevel_hierarchy and self._keep_hierarchy():
            spec = self.dataset_spec
            superclass = self.superclass_set[
                self._rng.randint(0, len(self.superclass_set), size=1)[0]]
            size = spec.classes_per_superclass[superclass]
            num_ways = sample_num_ways_uniformly(size, self.min_ways, self.max_ways_upper_bound,
                                                 self._rng)
            inds = sample_class_ids_uniformly(num_ways, size, self._rng)
            rel, _ = spec.get_class_ids_from_superclass_subclass_inds(self.split, superclass,
                                                                      inds)
            return np.asarray(rel)
        if self.use_all_classes:
            return np.arange(self.num_classes)
        if self.num_ways is not None:
            num_ways = self.num_ways
        else:
            num_ways = sample_num_ways_uniformly(self.num_filtered_classes, self.min_ways,
                                                 self.max_ways_upper_bound, self._rng)
        offset = self.class_set[0]
        candidates = [c - offset for c in self._filtered_class_set]
        return sample_class_ids_uniformly(num_ways, candidates, self._rng)

    def sample_episode_description(self):
        """One episode: a tuple of `(relative_class_id, num_support, num_query)`."""
        class_ids = self.sample_class_ids()
        images = np.array([self._images[self.class_set[c]] for c in class_ids])
        if self.num_query is not None:
            num_query = self.num_query
        else:
            num_query = compute_num_query(images, self.max_num_query, self.num_support)
        if self.num_support is not None:
            if np.ndim(self.num_support) == 0:
                if np.any(self.num_support + num_query > images):
                    raise ValueError(self._too_few(images, self.num_support + num_query))
                shots = self.num_support
            else:
                lo, hi = self.num_support
                if np.any(hi + num_query > images):
                    raise ValueError(self._too_few(images, hi + num_query))
                shots = self._rng.randint(low=lo, high=hi + 1)
            num_support = [shots] * len(class_ids)
        else:
            remaining = images - num_query
            support_set_size = sample_support_set_size(
                remaining, self.max_support_size_contrib_per_class, self.max_support_set_size,
                self._rng)
            num_support = sample_num_support_per_class(
                images, remaining, support_set_size, self.min_log_weight, self.max_log_weight,
                self._rng)
        return tuple((int(c), int(s), int(num_query)) for c, s in zip(class_ids, num_support))

    def _too_few(self, images, needed):
        smallest = int(np.argmin(images))
        return (f"{self.dataset_spec.name}: an episode needs {needed} images per class "
                f"(support + query), but a sampled class has only {images[smallest]}")

    def compute_chunk_sizes(self):
        """`(flush, support, query)` chunk sizes of the fixed-size episode id stream."""
        max_ways = self.num_ways if self.num_ways is not None else self.max_ways_upper_bound
        if self.num_support is None:
            support = self.max_support_set_size
        elif np.ndim(self.num_support) == 0:
            support = max_ways * self.num_support
        else:
            support = max_ways * self.num_support[1]
        query = max_ways * (self.num_query if self.num_query is not None
                            else self.max_num_query)
        return (support + query, support, query)
