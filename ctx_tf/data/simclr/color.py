"""SimCLR v1 colour distortion of a batch of images in [0, 1]: jitter and grayscale.

Every image gets its own random parameters; jitter applies brightness, contrast, saturation and
hue in a random order per image. Seeds: see :mod:`ctx_tf.data.simclr.seed_pairs`.
"""

import tensorflow as tf

from ctx_tf.data.simclr.seed_pairs import (as_seed, batch_size_of, no_autograph, per_image_coin,
                                           select_per_image, split_seed, uniform)

COLOR_JITTER_PROBABILITY = 0.8
GRAYSCALE_PROBABILITY = 0.2

# Jitter ranges per unit of strength (brightness, contrast, saturation, hue).
_BRIGHTNESS_PER_STRENGTH = 0.8
_CONTRAST_PER_STRENGTH = 0.8
_SATURATION_PER_STRENGTH = 0.8
_HUE_PER_STRENGTH = 0.2


def _jitter_ranges(strength):
    """Sampling ranges (lo, hi) of the four jitter parameters for a given strength."""
    s = float(strength)
    if s < 0:
        raise ValueError(f"color_jitter_strength must be >= 0, got {strength}")
    b = _BRIGHTNESS_PER_STRENGTH * s
    c = _CONTRAST_PER_STRENGTH * s
    sat = _SATURATION_PER_STRENGTH * s
    hue = _HUE_PER_STRENGTH * s
    # Multiplicative factors are kept >= 0 (the reference code rejects strengths > 1.25).
    return ((-b, b), (max(0.0, 1.0 - c), 1.0 + c), (max(0.0, 1.0 - sat), 1.0 + sat), (-hue, hue))


def _per_image(values):
    return tf.reshape(tf.cast(values, tf.float32), [-1, 1, 1, 1])


@no_autograph
def adjust_brightness(images, delta):
    """``x + delta_i`` for image i (SimCLR v1 brightness is additive); `delta` is [N]."""
    return images + _per_image(delta)


@no_autograph
def _map_scalar_op(op, images, values):
    """Applies ``op(image_i, values_i)`` to every image (the fused tf.image kernels take a
    scalar; they are several times faster on CPU than an unfused HSV round trip)."""
    images = tf.convert_to_tensor(images, tf.float32)
    values = tf.cast(values, tf.float32)
    out = tf.map_fn(
        lambda args: op(args[0], args[1]),
        (images, values),
        fn_output_signature=tf.TensorSpec(images.shape[1:], tf.float32),
    )
    out.set_shape(images.shape)
    return out


@no_autograph
def adjust_contrast(images, factor):
    """``(x - m) * f_i + m``, m = per-channel mean of image i (``tf.image.adjust_contrast``)."""
    mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
    return (images - mean) * _per_image(factor) + mean


@no_autograph
def adjust_saturation(images, factor):
    """HSV saturation ``S <- clip(S * f_i, 0, 1)`` per image (``tf.image.adjust_saturation``)."""
    return _map_scalar_op(tf.image.adjust_saturation, images, factor)


@no_autograph
def adjust_hue(images, delta):
    """HSV hue ``H <- (H + d_i) mod 1`` per image (``tf.image.adjust_hue``)."""
    return _map_scalar_op(tf.image.adjust_hue, images, delta)


# Jitter ops in parameter order (brightness, contrast, saturation, hue).
_JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def _jitter_batch(images, params, order, apply):
    """Colour jitter with per-image parameters [N, 4], op orders [N, 4] and apply flags [N].

    Step k applies op ``order[i, k]`` to image i (then clips to [0, 1]); images with
    ``apply[i] == False`` pass through untouched. Vectorized: at every step the batch is
    partitioned by op, each op runs on its part, and the parts are stitched back.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    n = batch_size_of(images)
    index = tf.range(n)
    identity = len(_JITTER_OPS)
    x = images
    for step in range(4):
        op = tf.where(apply, order[:, step], identity)
        # Partition only the indices and gather everything with them: one partition feeds
        # all consumers, so they cannot disagree (with a constant seed, Grappler's constant
        # folding made separate partitions of images and parameters inconsistent).
        part_index = tf.dynamic_partition(index, op, identity + 1)
        outs = []
        for k, fn in enumerate(_JITTER_OPS):
            part = tf.gather(x, part_index[k])
            values = tf.gather(params[:, k], part_index[k])
            outs.append(tf.clip_by_value(fn(part, values), 0.0, 1.0))
        outs.append(tf.gather(x, part_index[identity]))
        x = tf.dynamic_stitch(part_index, outs)
    x = tf.reshape(x, tf.shape(images))
    x.set_shape(images.shape)
    return x


def _sample_jitter(images, strength, seed):
    """Per-image jitter parameters [N, 4] and op orders [N, 4] (uniform permutations)."""
    n = batch_size_of(images)
    param_seed, order_seed = tf.unstack(split_seed(seed, 2))
    ranges = _jitter_ranges(strength)
    lo = tf.constant([r[0] for r in ranges], tf.float32)
    hi = tf.constant([r[1] for r in ranges], tf.float32)
    u = uniform(tf.stack([n, 4]), param_seed, 0.0, 1.0)
    params = lo + (hi - lo) * u
    order = tf.argsort(uniform(tf.stack([n, 4]), order_seed, 0.0, 1.0), axis=1)
    return params, tf.cast(order, tf.int32)


@no_autograph
def color_jitter(images, strength=1.0, seed=None):
    """Always applies SimCLR colour jitter to every image of a [N, H, W, 3] batch in [0, 1].

    Per image: brightness ``x + d`` with ``d ~ U[-0.8s, 0.8s]``; contrast (per-channel mean,
    like ``tf.image.adjust_contrast``) with ``f ~ U[1-0.8s, 1+0.8s]``; saturation (HSV, like
    ``tf.image.adjust_saturation``) with ``f ~ U[1-0.8s, 1+0.8s]``; hue (HSV, like
    ``tf.image.adjust_hue``) with ``d ~ U[-0.2s, 0.2s]``; in a uniformly random order, clipping
    to [0, 1] after every op. ``s = strength`` (a Python number >= 0); factor ranges are
    clamped at 0.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    params, order = _sample_jitter(images, strength, as_seed(seed))
    apply = tf.ones([batch_size_of(images)], tf.bool)
    return _jitter_batch(images, params, order, apply)


@no_autograph
def random_color_jitter(images, strength=1.0, seed=None, p=COLOR_JITTER_PROBABILITY):
    """Applies :func:`color_jitter` to each image independently with probability `p` (0.8)."""
    images = tf.convert_to_tensor(images, tf.float32)
    coin_seed, jitter_seed = tf.unstack(split_seed(as_seed(seed), 2))
    apply = per_image_coin(images, p, coin_seed)
    params, order = _sample_jitter(images, strength, jitter_seed)
    return _jitter_batch(images, params, order, apply)


@no_autograph
def random_grayscale(images, seed=None, p=GRAYSCALE_PROBABILITY):
    """Converts each image to grayscale (ITU-R 601 luma, 3 channels) with probability `p`."""
    images = tf.convert_to_tensor(images, tf.float32)
    gray = tf.image.rgb_to_grayscale(images)
    gray = tf.tile(gray, [1, 1, 1, 3])
    return select_per_image(per_image_coin(images, p, as_seed(seed)), gray, images)
