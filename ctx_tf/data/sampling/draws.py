"""The draws an episode description is made of, each as the official sampler makes it.

The same calls on the same `numpy.random.RandomState` in the same order, so that the sampler
consumes the generator exactly as the official one does.
"""

import numpy as np


def sample_num_ways_uniformly(num_classes, min_ways, max_ways, rng):
    """Way uniform on [min_ways, min(max_ways, num_classes)]."""
    return int(rng.randint(low=min_ways, high=min(max_ways, num_classes) + 1))


def sample_class_ids_uniformly(num_ways, candidates, rng):
    """`num_ways` distinct entries of `candidates` (an int n means range(n)), random order.

    Same draw as `rng.choice(candidates, num_ways, replace=False)`: one permutation.
    """
    candidates = np.arange(candidates) if np.ndim(candidates) == 0 else np.asarray(candidates)
    if num_ways > len(candidates):
        raise ValueError(f"cannot sample {num_ways} classes out of {len(candidates)}")
    return candidates[rng.permutation(len(candidates))[:num_ways]]


def compute_num_query(images_per_class, max_num_query, num_support):
    """Query images per class (the same for every class of the episode)."""
    images_per_class = np.asarray(images_per_class)
    if num_support is None:
        if images_per_class.min() < 2:
            raise ValueError(
                "every class of a variable-shot episode needs at least 2 images (one support, "
                f"one query); the smallest sampled class has {images_per_class.min()}"
            )
        return int(min(max_num_query, (images_per_class // 2).min()))
    max_support = num_support if np.ndim(num_support) == 0 else num_support[1]
    if (images_per_class - max_support).min() < 1:
        raise ValueError(
            f"num_support={num_support!r} needs at least {max_support + 1} images per class; "
            f"the smallest sampled class has {images_per_class.min()}"
        )
    return int(min(max_num_query, images_per_class.min() - max_support))


def sample_support_set_size(num_remaining_per_class, max_support_size_contrib_per_class,
                            max_support_set_size, rng):
    """Total support-set size: one beta for all classes, each contributing >= 1."""
    if max_support_set_size < len(num_remaining_per_class):
        raise ValueError(
            f"max_support_set_size={max_support_set_size} is smaller than the "
            f"{len(num_remaining_per_class)} ways of the episode"
        )
    beta = rng.uniform()
    contributions = np.minimum(max_support_size_contrib_per_class, num_remaining_per_class)
    # floor(beta * x + 1), exactly as the official code, so totals match bit for bit.
    return int(min(np.floor(beta * contributions + 1).sum(), max_support_set_size))


def sample_num_support_per_class(images_per_class, num_remaining_per_class, support_set_size,
                                 min_log_weight, max_log_weight, rng):
    """Class-imbalanced split of the support set; class weights use total image counts."""
    images_per_class = np.asarray(images_per_class)
    num_remaining_per_class = np.asarray(num_remaining_per_class)
    if support_set_size < len(num_remaining_per_class):
        raise ValueError(
            f"support set size {support_set_size} is smaller than the "
            f"{len(num_remaining_per_class)} ways of the episode"
        )
    if num_remaining_per_class.min() < 1:
        raise ValueError("some sampled class has no image left for its support set")
    remaining = support_set_size - len(num_remaining_per_class)
    weights = images_per_class * np.exp(
        rng.uniform(min_log_weight, max_log_weight, size=images_per_class.shape))
    proportions = weights / weights.sum()
    desired = np.floor(proportions * remaining).astype("int32") + 1
    return np.minimum(desired, num_remaining_per_class)
