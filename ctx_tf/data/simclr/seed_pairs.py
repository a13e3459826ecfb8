"""Seeds of the SimCLR random ops, and the per-image coin every random op of a batch uses.

Every random function takes ``seed``:

* ``None``: a fresh stateless seed is drawn from TensorFlow's global (stateful) RNG, so results
  follow ``tf.random.set_seed`` the way any unseeded TF random op does;
* a shape-``[2]`` integer tensor/array (a *stateless seed pair*, as used by
  ``tf.random.stateless_*``): the result is a deterministic function of the inputs and the pair;
* a Python ``int`` ``s``: in eager mode the fixed pair ``[s, 0]``; in graph mode (inside
  ``Dataset.map`` or a ``tf.function``) a *stream* seed: the pair comes from a stateful
  ``tf.random.uniform(seed=s)`` op, so each call (each episode) gets a different pair while
  the sequence is the same every time the dataset is iterated and every run (sequential
  ``map`` assumed; with ``num_parallel_calls`` the assignment of pairs to elements can vary).
  This is what a pipeline-level integer seed needs (if ``tf.random.set_seed`` was called, the
  stream also depends on that global seed, as for any TF op seed);
* a ``tf.random.Generator``: one seed pair is taken from it (eager use only; a generator cannot
  be captured by a ``tf.data`` function).

All draws below that seed are derived with ``tf.random.experimental.stateless_split``, so one
seed pair per episode (see :func:`episode_seed`) makes a whole pipeline reproducible, including
across TensorFlow versions that share the stateless RNG (2.15 and 2.21 give identical results).
"""

import numpy as np
import tensorflow as tf

# The SimCLR code has no data-dependent Python control flow: AutoGraph conversion (which
# tf.data and tf.function apply to user code) would only add tracing time.
no_autograph = tf.autograph.experimental.do_not_convert




def as_seed(seed):
    """Normalizes a `seed` argument (see the module docstring) to an int64 [2] tensor."""
    if seed is None:
        return tf.random.uniform([2], minval=0, maxval=2**62, dtype=tf.int64)
    if isinstance(seed, tf.random.Generator):
        return seed.make_seeds(1)[:, 0]
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        if tf.executing_eagerly():
            return tf.constant([int(seed), 0], dtype=tf.int64)
        # In a graph (Dataset.map, tf.function) a constant pair would repeat on every call:
        # use a stateful op seeded with `seed` instead -- a deterministic stream of pairs.
        return tf.random.uniform(
            [2], minval=0, maxval=2**62, dtype=tf.int64, seed=int(seed) % 2**63
        )
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    seed.shape.assert_is_compatible_with([2])
    return tf.reshape(seed, [2])


def split_seed(seed, num):
    """`num` independent seed pairs ([num, 2] int64) derived from one pair."""
    return tf.random.experimental.stateless_split(seed, num=num)


@no_autograph
def episode_seed(base_seed, episode_index):
    """The seed pair for episode number `episode_index` of a pipeline seeded with `base_seed`.

    Intended use inside ``tf.data`` (see :func:`maybe_convert_to_simclr`)::

        ds = ds.enumerate().map(
            lambda i, ep: maybe_convert_to_simclr(ep, 0.5, seed=episode_seed(1234, i)))
    """
    return tf.stack(
        [tf.cast(base_seed, tf.int64), tf.cast(episode_index, tf.int64)], axis=0
    )


def uniform(shape, seed, minval, maxval):
    return tf.random.stateless_uniform(shape, seed=seed, minval=minval, maxval=maxval)


def image_hw(images):
    """(height, width) of a [N, H, W, C] batch: Python ints when static, else scalar tensors."""
    h, w = images.shape[1], images.shape[2]
    dynamic = tf.shape(images)
    return (h if h is not None else dynamic[1]), (w if w is not None else dynamic[2])


def batch_size_of(images):
    return tf.shape(images)[0]



def per_image_coin(images, p, seed):
    """bool [N]: True with probability p, independently per image (u < p, u ~ U[0, 1))."""
    u = uniform(tf.reshape(batch_size_of(images), [1]), seed, 0.0, 1.0)
    return u < p


def select_per_image(mask, a, b):
    """Per image of a batch: `a` where `mask` [N] is True, else `b`."""
    return tf.where(tf.reshape(mask, [-1, 1, 1, 1]), a, b)
