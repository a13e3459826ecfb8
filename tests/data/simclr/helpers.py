"""Shared by the SimCLR tests: 5-sigma binomial bounds (`within_5_sigma`), stateless seeds
(`seed_pair`), a colourful image batch (`colourful`) and a synthetic episode whose support
images tell their index (`make_episode`)."""

import math

import numpy as np
import tensorflow as tf

from ctx_tf.data.episode import Episode


def within_5_sigma(count, n, p):
    """True iff count is within 5 binomial standard deviations of n * p."""
    return abs(count - n * p) <= 5.0 * math.sqrt(n * p * (1.0 - p))


def seed_pair(rng_seed, k=0):
    """The stateless seed [rng_seed, k] the augmentation takes."""
    return tf.constant([rng_seed, k], tf.int64)


def colourful(size=8, n=1, seed=0):
    """`n` copies of one `size` px image in [-1, 1] with widely separated channels."""
    rng = np.random.default_rng(seed)
    # Widely separated channels: jitter never turns such an image exactly gray.
    base = np.stack(
        [
            rng.uniform(0.05, 0.3, (size, size)),
            rng.uniform(0.35, 0.65, (size, size)),
            rng.uniform(0.7, 0.95, (size, size)),
        ],
        axis=-1,
    ).astype(np.float32)
    return np.broadcast_to(base * 2 - 1, (n, size, size, 3)).copy()


def make_episode(shots, queries, class_ids, size=8, rng=None):
    """An episode grouped by class in description order; support image i is constant (i+1)/100."""
    rng = rng or np.random.default_rng(0)
    support_labels = np.repeat(np.arange(len(shots)), shots).astype(np.int32)
    query_labels = np.repeat(np.arange(len(queries)), queries).astype(np.int32)
    num_support = len(support_labels)
    values = (np.arange(num_support, dtype=np.float32) + 1.0) / 100.0 - 1.0
    support_images = np.broadcast_to(values[:, None, None, None], (num_support, size, size, 3))
    query_images = rng.uniform(-1, 1, size=(len(query_labels), size, size, 3)).astype(np.float32)
    class_ids = np.asarray(class_ids, np.int64)
    return Episode(
        support_images=np.ascontiguousarray(support_images, np.float32),
        support_labels=support_labels,
        support_class_ids=class_ids[support_labels],
        query_images=query_images,
        query_labels=query_labels,
        query_class_ids=class_ids[query_labels],
    )
