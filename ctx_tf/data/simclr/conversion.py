"""SimCLR episodes: the episode conversion of CrossTransformers (docs/protocol.md §5).

A SimCLR episode turns a normal few-shot episode into an instance-discrimination task: every
support image becomes its own class and the queries are differently augmented copies of some of
the support images. Images are in ``[-1, 1]`` in and out; the augmentation is
:func:`ctx_tf.data.simclr.augment.simclr_augment` (its colour-jitter strength is the gin
parameter ``simclr_augment.color_jitter_strength``), seeds work as
:mod:`ctx_tf.data.simclr.seed_pairs` describes.
Everything runs inside ``tf.data`` (graph mode, dynamic episode sizes).

``python -m ctx_tf.data.simclr_preview`` writes a PNG of one SimCLR episode.
"""

import tensorflow as tf

from ctx_tf.data.episode import Episode
from ctx_tf.data.simclr.augment import simclr_augment
from ctx_tf.data.simclr.seed_pairs import as_seed, no_autograph, split_seed, uniform



def _cast_episode(episode):
    e = Episode(*episode)
    return Episode(
        support_images=tf.convert_to_tensor(e.support_images, tf.float32),
        support_labels=tf.cast(e.support_labels, tf.int32),
        support_class_ids=tf.cast(e.support_class_ids, tf.int64),
        query_images=tf.convert_to_tensor(e.query_images, tf.float32),
        query_labels=tf.cast(e.query_labels, tf.int32),
        query_class_ids=tf.cast(e.query_class_ids, tf.int64),
    )


@no_autograph
def simclr_query_sources(support_labels, query_labels):
    """Indices of the support images that a SimCLR episode copies into its query set.

    For each class c with k_c queries, the first k_c support images of class c (all of them if
    the class has fewer), in support order.

    Returns:
      int32 [M] support indices, increasing; M = sum_c min(k_c, s_c).
    """
    support_labels = tf.cast(support_labels, tf.int32)
    query_labels = tf.cast(query_labels, tf.int32)
    num_classes = 1 + tf.maximum(
        tf.reduce_max(tf.concat([support_labels, [-1]], 0)),
        tf.reduce_max(tf.concat([query_labels, [-1]], 0)),
    )
    queries_per_class = tf.math.unsorted_segment_sum(
        tf.ones_like(query_labels), query_labels, num_classes
    )
    one_hot = tf.one_hot(support_labels, num_classes, dtype=tf.int32)
    rank_in_class = tf.reduce_sum(tf.cumsum(one_hot, axis=0, exclusive=True) * one_hot, axis=1)
    keep = rank_in_class < tf.gather(queries_per_class, support_labels)
    return tf.cast(tf.reshape(tf.where(keep), [-1]), tf.int32)


@no_autograph
def to_simclr_episode(episode, color_jitter_strength=None, seed=None, augment=True):
    """Converts an episode into a SimCLR episode (docs/protocol.md §5.1).

    * new queries: copies of the first k_c support images of every class c (k_c = the number of
      queries of c; all support images of c if it has fewer), in support order;
    * support labels ``0 .. Ns-1`` (every support image is its own class), support class ids
      unchanged;
    * query label = index of the support image it was copied from; query class id = that
      image's class id;
    * support images: ``simclr_augment(blur=False)``; query copies, independently:
      ``simclr_augment(blur=True)``.

    Args:
      episode: an :class:`Episode` (or 6-tuple) of tensors or arrays; images in [-1, 1].
      color_jitter_strength: None = the gin-configurable default of :func:`simclr_augment`.
      seed: see the module docstring.
      augment: False only copies (no augmentation at all); a hook for tests and inspection.

    Returns:
      An :class:`Episode` (float32 images, int32 labels, int64 class ids).
    """
    e = _cast_episode(episode)
    sources = simclr_query_sources(e.support_labels, e.query_labels)
    num_support = tf.shape(e.support_labels)[0]
    query_images = tf.gather(e.support_images, sources)
    support_images = e.support_images
    if augment:
        support_seed, query_seed = tf.unstack(split_seed(as_seed(seed), 2))
        kwargs = {}
        if color_jitter_strength is not None:
            kwargs["color_jitter_strength"] = color_jitter_strength
        support_images = simclr_augment(support_images, blur=False, seed=support_seed, **kwargs)
        query_images = simclr_augment(query_images, blur=True, seed=query_seed, **kwargs)
    query_images.set_shape([None] + e.support_images.shape.as_list()[1:])
    return Episode(
        support_images=support_images,
        support_labels=tf.range(num_support, dtype=tf.int32),
        support_class_ids=e.support_class_ids,
        query_images=query_images,
        query_labels=sources,
        query_class_ids=tf.gather(e.support_class_ids, sources),
    )


@no_autograph
def maybe_convert_to_simclr(
    episode, simclr_episode_fraction, seed=None, color_jitter_strength=None, augment=True
):
    """Converts `episode` with :func:`to_simclr_episode` with probability `simclr_episode_fraction`.

    Draws ``u ~ U[0, 1)`` and converts iff ``u < simclr_episode_fraction`` (0 never, 1 always),
    with ``tf.cond`` so it works inside ``Dataset.map``. Call it on TRAINING episodes only
    (validation/test use fraction 0), after decoding and before batching/prefetch, e.g.::

        ds = ds.enumerate().map(
            lambda i, ep: maybe_convert_to_simclr(
                ep, simclr_episode_fraction, seed=episode_seed(base_seed, i)))

    or, equivalently reproducible, with one pipeline-level Python int (a stream seed in graph
    mode, see the module docstring; needs a sequential ``map``)::

        ds = ds.map(lambda ep: maybe_convert_to_simclr(ep, fraction, seed=pipeline_seed))

    ``seed=None`` is unseeded (follows ``tf.random.set_seed``, like the official pipeline).

    A Python fraction <= 0 returns the episode (cast to the Episode dtypes) without building
    the conversion graph.

    Args:
      episode: an :class:`Episode` (or 6-tuple); images in [-1, 1].
      simclr_episode_fraction: Python float or scalar tensor in [0, 1].
      seed: see the module docstring; pass a per-episode seed pair for reproducibility.
      color_jitter_strength: None = gin default (``simclr_augment.color_jitter_strength``).
      augment: passed to :func:`to_simclr_episode`.

    Returns:
      An :class:`Episode` with the same dtypes and static image shapes.
    """
    e = _cast_episode(episode)
    if isinstance(simclr_episode_fraction, (int, float)) and simclr_episode_fraction <= 0:
        return e
    coin_seed, convert_seed = tf.unstack(split_seed(as_seed(seed), 2))
    u = uniform([], coin_seed, 0.0, 1.0)
    convert = u < tf.cast(simclr_episode_fraction, tf.float32)
    out = tf.cond(
        convert,
        lambda: to_simclr_episode(
            e, color_jitter_strength=color_jitter_strength, seed=convert_seed, augment=augment
        ),
        lambda: e,
    )
    out = Episode(*out)
    out.support_images.set_shape(e.support_images.shape)
    out.query_images.set_shape([None] + e.query_images.shape.as_list()[1:])
    return out
