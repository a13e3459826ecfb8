"""Prototypical-network head: class-mean prototypes and negative squared Euclidean logits.

float16/bfloat16 embeddings (a mixed policy) are cast to float32: means, distances and logits
are float32.
"""

import tensorflow as tf


def _to_float32(x):
    x = tf.convert_to_tensor(x)
    return tf.cast(x, tf.float32) if x.dtype in (tf.float16, tf.bfloat16) else x


def class_prototypes(support_embeddings, support_labels, num_classes=None):
    """Class means `[num_classes, dim]` of `support_embeddings` `[num_support, dim]`."""
    support_embeddings = _to_float32(support_embeddings)
    if support_embeddings.shape.rank != 2:
        raise ValueError(
            f"prototypes need flat support embeddings [num_support, dim], got {support_embeddings.shape}")
    labels = tf.cast(support_labels, tf.int32)
    if num_classes is None:
        num_classes = tf.reduce_max(labels) + 1
    counts = tf.math.bincount(labels, minlength=num_classes, maxlength=num_classes,
                              dtype=support_embeddings.dtype)
    check = tf.debugging.assert_positive(
        counts, message="prototypes: support_labels must cover every class 0..K-1")
    with tf.control_dependencies([check]):
        sums = tf.math.unsorted_segment_sum(support_embeddings, labels, num_classes)
    return sums / counts[:, None]


def prototype_logits(query_embeddings, prototypes):
    """`-||query - prototype||^2`: `[num_query, dim]`, `[K, dim]` -> `[num_query, K]`."""
    query_embeddings = _to_float32(query_embeddings)
    prototypes = _to_float32(prototypes)
    if query_embeddings.shape.rank != 2:
        raise ValueError(
            f"prototype logits need flat query embeddings [num_query, dim], got {query_embeddings.shape}")
    # The difference form is exact where the expanded |q|^2 - 2 q.p + |p|^2 cancels badly.
    return -tf.reduce_sum(tf.square(query_embeddings[:, None, :] - prototypes[None]), axis=-1)
