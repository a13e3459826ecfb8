"""SimCLR episodes: SimCLR (v1) augmentation and the episode conversion of CrossTransformers.

A SimCLR episode turns a normal few-shot episode into an instance-discrimination task: every
support image becomes its own class and the queries are differently augmented copies of some of
the support images (protocol spec, section 4).

Everything here is written with plain TensorFlow ops so that it runs inside ``tf.data``
(graph mode, dynamic episode sizes); static image shapes are preserved.

Value ranges
------------
* :func:`simclr_augment`, :func:`to_simclr_episode` and :func:`maybe_convert_to_simclr` take and
  return images in ``[-1, 1]`` (the range the decoder produces).
* The individual batch ops (:func:`random_resized_crop`, :func:`random_flip_left_right`,
  :func:`color_jitter`, :func:`random_color_jitter`, :func:`random_grayscale`,
  :func:`random_blur`, :func:`gaussian_blur`) work on images in ``[0, 1]``, like the SimCLR
  reference code, and take a batch ``[N, H, W, 3]``. Every image of a batch gets its own,
  independent random parameters.

Randomness and seeds
--------------------
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

Gin
---
The colour-jitter strength (the ``--color_jitter_strength`` flag of the reference code, default
1.0) is the gin parameter ``simclr_augment.color_jitter_strength``, e.g.::

    simclr_augment.color_jitter_strength = 0.5

It applies wherever a caller does not pass ``color_jitter_strength`` explicitly (that includes
:func:`to_simclr_episode` and :func:`maybe_convert_to_simclr` when their argument is ``None``).

Command line
------------
``python -m ctx_tf.data.simclr --records_root_dir=DIR --dataset=NAME --out=grid.png`` writes a
PNG with one SimCLR episode: every row shows a support image next to its augmented query copy.
"""

import argparse
import sys

import gin
import numpy as np
import tensorflow as tf

from ctx_tf.data.episode import Episode

__all__ = [
    "CROP_AREA_RANGE",
    "CROP_MIN_OBJECT_COVERED",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "blur_kernel_taps",
    "color_jitter",
    "crop_and_resize",
    "episode_seed",
    "gaussian_blur",
    "gaussian_kernel_1d",
    "main",
    "maybe_convert_to_simclr",
    "random_blur",
    "random_color_jitter",
    "random_flip_left_right",
    "random_grayscale",
    "random_resized_crop",
    "resize_bicubic_legacy",
    "sample_crop_boxes",
    "save_episode_grid",
    "simclr_augment",
    "simclr_query_sources",
    "to_simclr_episode",
]

# Random resized crop (SimCLR v1 `crop_and_resize`).
CROP_MIN_OBJECT_COVERED = 0.1
CROP_AREA_RANGE = (0.08, 1.0)
CROP_MAX_ATTEMPTS = 100
# Aspect ratios (height-normalized, i.e. multiplied by W/H) of the random crop.
CROP_ASPECT_RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)

FLIP_PROBABILITY = 0.5
COLOR_JITTER_PROBABILITY = 0.8
GRAYSCALE_PROBABILITY = 0.2
BLUR_SIGMA_RANGE = (0.1, 2.0)

# Jitter ranges per unit of strength (brightness, contrast, saturation, hue).
_BRIGHTNESS_PER_STRENGTH = 0.8
_CONTRAST_PER_STRENGTH = 0.8
_SATURATION_PER_STRENGTH = 0.8
_HUE_PER_STRENGTH = 0.2


# The code below has no data-dependent Python control flow: AutoGraph conversion (which
# tf.data and tf.function apply to user code) would only add tracing time.
_no_autograph = tf.autograph.experimental.do_not_convert

# --------------------------------------------------------------------------------------------
# Seeds
# --------------------------------------------------------------------------------------------


def _as_seed(seed):
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


def _split(seed, num):
    """`num` independent seed pairs ([num, 2] int64) derived from one pair."""
    return tf.random.experimental.stateless_split(seed, num=num)


@_no_autograph
def episode_seed(base_seed, episode_index):
    """The seed pair for episode number `episode_index` of a pipeline seeded with `base_seed`.

    Intended use inside ``tf.data`` (see :func:`maybe_convert_to_simclr`)::

        ds = ds.enumerate().map(
            lambda i, ep: maybe_convert_to_simclr(ep, 0.5, seed=episode_seed(1234, i)))
    """
    return tf.stack(
        [tf.cast(base_seed, tf.int64), tf.cast(episode_index, tf.int64)], axis=0
    )


def _uniform(shape, seed, minval, maxval):
    return tf.random.stateless_uniform(shape, seed=seed, minval=minval, maxval=maxval)


def _image_hw(images):
    """(height, width) of a [N, H, W, C] batch: Python ints when static, else scalar tensors."""
    h, w = images.shape[1], images.shape[2]
    dynamic = tf.shape(images)
    return (h if h is not None else dynamic[1]), (w if w is not None else dynamic[2])


def _batch_size(images):
    return tf.shape(images)[0]


# --------------------------------------------------------------------------------------------
# Random resized crop
# --------------------------------------------------------------------------------------------


def resize_bicubic_legacy(images, size):
    """Bicubic resize exactly as TF1 ``tf.image.resize_bicubic`` with its defaults.

    That is ``align_corners=False`` and the legacy (non half-pixel) sampling grid
    ``src = dst * in / out`` with the Keys kernel of TF's legacy path (a = -0.75) and clamped
    borders. ``tf.compat.v1.image.resize_bicubic(..., align_corners=False,
    half_pixel_centers=False)`` and ``tf.compat.v1.image.resize(method=BICUBIC)`` run the same
    kernel; TF2's ``tf.image.resize(method='bicubic')`` does not (half-pixel centres, a = -0.5).
    """
    return tf.raw_ops.ResizeBicubic(
        images=images, size=size, align_corners=False, half_pixel_centers=False
    )


@_no_autograph
def sample_crop_boxes(num_images, height, width, seed=None):
    """Samples one SimCLR crop box per image of a [num_images, height, width, 3] batch.

    Args:
      num_images: int or scalar int tensor.
      height, width: Python ints (static image size).
      seed: see the module docstring.

    Returns:
      (begin, size): int32 [num_images, 2] tensors with the (row, column) offset and the
      (height, width) of each crop, from ``sample_distorted_bounding_box`` over the whole image
      with ``min_object_covered=0.1``, aspect ratio ``(3/4, 4/3)·W/H``, area ``(0.08, 1)``,
      100 attempts, whole image as the fallback.
    """
    if height is None or width is None:
        raise ValueError("sample_crop_boxes needs a static image height and width")
    seeds = _split(_as_seed(seed), num_images)
    shape = tf.constant([height, width, 3], tf.int32)
    whole = tf.constant([[[0.0, 0.0, 1.0, 1.0]]], tf.float32)
    lo, hi = CROP_ASPECT_RATIO_RANGE
    ratio_range = (lo * width / height, hi * width / height)

    def one_box(image_seed):
        begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
            image_size=shape,
            bounding_boxes=whole,
            seed=image_seed,
            min_object_covered=CROP_MIN_OBJECT_COVERED,
            aspect_ratio_range=ratio_range,
            area_range=CROP_AREA_RANGE,
            max_attempts=CROP_MAX_ATTEMPTS,
            use_image_if_no_bounding_boxes=True,
        )
        return tf.stack([begin[:2], size[:2]], axis=0)

    boxes = tf.map_fn(
        one_box, seeds, fn_output_signature=tf.TensorSpec([2, 2], tf.int32)
    )
    return boxes[:, 0], boxes[:, 1]


@_no_autograph
def crop_and_resize(images, begin, size):
    """Crops box i out of image i and resizes it back to H x W with legacy bicubic.

    Args:
      images: float32 [N, H, W, C] with static H, W, C.
      begin, size: int32 [N, 2] (row, column) offsets and (height, width) of the boxes.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    _, h, w, c = images.shape
    if h is None or w is None or c is None:
        raise ValueError("crop_and_resize needs static height, width and channels")

    def one(args):
        image, b, s = args
        crop = tf.slice(image, tf.concat([b, [0]], 0), tf.concat([s, [-1]], 0))
        return resize_bicubic_legacy(crop[tf.newaxis], [h, w])[0]

    out = tf.map_fn(
        one, (images, begin, size), fn_output_signature=tf.TensorSpec([h, w, c], tf.float32)
    )
    return out


@_no_autograph
def random_resized_crop(images, seed=None):
    """SimCLR v1 random resized crop of every image of a [N, H, W, C] batch in [0, 1].

    Box from :func:`sample_crop_boxes`, then :func:`crop_and_resize` (legacy bicubic). Bicubic
    interpolation can overshoot [0, 1] slightly; :func:`simclr_augment` clips at the end, as the
    reference does.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    begin, size = sample_crop_boxes(
        _batch_size(images), images.shape[1], images.shape[2], seed=seed
    )
    return crop_and_resize(images, begin, size)


# --------------------------------------------------------------------------------------------
# Flip, colour jitter, grayscale
# --------------------------------------------------------------------------------------------


def _per_image_coin(images, p, seed):
    """bool [N]: True with probability p, independently per image (u < p, u ~ U[0, 1))."""
    u = _uniform(tf.reshape(_batch_size(images), [1]), seed, 0.0, 1.0)
    return u < p


def _select(mask, a, b):
    return tf.where(tf.reshape(mask, [-1, 1, 1, 1]), a, b)


@_no_autograph
def random_flip_left_right(images, seed=None, p=FLIP_PROBABILITY):
    """Mirrors each image of a [N, H, W, C] batch horizontally with probability `p`."""
    images = tf.convert_to_tensor(images, tf.float32)
    flip = _per_image_coin(images, p, _as_seed(seed))
    return _select(flip, tf.reverse(images, axis=[2]), images)


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


@_no_autograph
def adjust_brightness(images, delta):
    """``x + delta_i`` for image i (SimCLR v1 brightness is additive); `delta` is [N]."""
    return images + _per_image(delta)


@_no_autograph
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


@_no_autograph
def adjust_contrast(images, factor):
    """``(x - m) * f_i + m``, m = per-channel mean of image i (``tf.image.adjust_contrast``)."""
    mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
    return (images - mean) * _per_image(factor) + mean


@_no_autograph
def adjust_saturation(images, factor):
    """HSV saturation ``S <- clip(S * f_i, 0, 1)`` per image (``tf.image.adjust_saturation``)."""
    return _map_scalar_op(tf.image.adjust_saturation, images, factor)


@_no_autograph
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
    n = _batch_size(images)
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
    n = _batch_size(images)
    param_seed, order_seed = tf.unstack(_split(seed, 2))
    ranges = _jitter_ranges(strength)
    lo = tf.constant([r[0] for r in ranges], tf.float32)
    hi = tf.constant([r[1] for r in ranges], tf.float32)
    u = _uniform(tf.stack([n, 4]), param_seed, 0.0, 1.0)
    params = lo + (hi - lo) * u
    order = tf.argsort(_uniform(tf.stack([n, 4]), order_seed, 0.0, 1.0), axis=1)
    return params, tf.cast(order, tf.int32)


@_no_autograph
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
    params, order = _sample_jitter(images, strength, _as_seed(seed))
    apply = tf.ones([_batch_size(images)], tf.bool)
    return _jitter_batch(images, params, order, apply)


@_no_autograph
def random_color_jitter(images, strength=1.0, seed=None, p=COLOR_JITTER_PROBABILITY):
    """Applies :func:`color_jitter` to each image independently with probability `p` (0.8)."""
    images = tf.convert_to_tensor(images, tf.float32)
    coin_seed, jitter_seed = tf.unstack(_split(_as_seed(seed), 2))
    apply = _per_image_coin(images, p, coin_seed)
    params, order = _sample_jitter(images, strength, jitter_seed)
    return _jitter_batch(images, params, order, apply)


@_no_autograph
def random_grayscale(images, seed=None, p=GRAYSCALE_PROBABILITY):
    """Converts each image to grayscale (ITU-R 601 luma, 3 channels) with probability `p`."""
    images = tf.convert_to_tensor(images, tf.float32)
    gray = tf.image.rgb_to_grayscale(images)
    gray = tf.tile(gray, [1, 1, 1, 3])
    return _select(_per_image_coin(images, p, _as_seed(seed)), gray, images)


# --------------------------------------------------------------------------------------------
# Gaussian blur
# --------------------------------------------------------------------------------------------


def blur_kernel_taps(image_size):
    """Number of taps of the SimCLR blur kernel for an image of height `image_size`.

    ``k = image_size // 10`` made odd as ``2 * (k // 2) + 1`` (224 -> 23, 84 -> 9).
    """
    k = image_size // 10
    return 2 * (k // 2) + 1


@_no_autograph
def gaussian_kernel_1d(taps, sigma):
    """Normalized 1-D Gaussian kernels.

    Args:
      taps: odd number of taps (Python int or scalar tensor).
      sigma: float tensor of any shape S.

    Returns:
      float32 [*S, taps], each row summing to 1.
    """
    sigma = tf.convert_to_tensor(sigma, tf.float32)
    radius = taps // 2
    x = tf.cast(tf.range(-radius, radius + 1), tf.float32)
    logits = -tf.square(x) / (2.0 * tf.square(sigma[..., tf.newaxis]))
    kernel = tf.exp(logits)
    return kernel / tf.reduce_sum(kernel, axis=-1, keepdims=True)


@_no_autograph
def gaussian_blur(images, sigma, taps=None):
    """Separable Gaussian blur of a [N, H, W, C] batch, each image with its own sigma.

    Horizontal then vertical depthwise convolution, ``SAME`` zero padding (borders darken), as
    in the reference. `sigma` is a scalar or [N]; `taps` defaults to
    ``blur_kernel_taps(H)``.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    n = _batch_size(images)
    h, w = _image_hw(images)
    c = images.shape[3]
    if c is None:
        raise ValueError("gaussian_blur needs a static channel count")
    if taps is None:
        taps = blur_kernel_taps(h)
    sigma = tf.broadcast_to(tf.convert_to_tensor(sigma, tf.float32), [n])
    kernels = gaussian_kernel_1d(taps, sigma)  # [N, taps]
    # Fold the batch into channels so one depthwise convolution applies per-image kernels.
    per_channel = tf.repeat(kernels, c, axis=0)  # [N*C, taps], image-major like the reshape
    per_channel = tf.transpose(per_channel)  # [taps, N*C]
    horizontal = tf.reshape(per_channel, tf.stack([1, taps, n * c, 1]))
    vertical = tf.reshape(per_channel, tf.stack([taps, 1, n * c, 1]))
    x = tf.transpose(images, [1, 2, 0, 3])  # [H, W, N, C]
    x = tf.reshape(x, tf.stack([1, h, w, n * c]))
    strides = [1, 1, 1, 1]
    x = tf.raw_ops.DepthwiseConv2dNative(
        input=x, filter=horizontal, strides=strides, padding="SAME"
    )
    x = tf.raw_ops.DepthwiseConv2dNative(input=x, filter=vertical, strides=strides, padding="SAME")
    x = tf.reshape(x, tf.stack([h, w, n, c]))
    out = tf.transpose(x, [2, 0, 1, 3])
    out.set_shape(images.shape)
    return out


@_no_autograph
def random_blur(images, seed=None):
    """Blurs each image with its own ``sigma ~ U[0.1, 2.0]`` (always, p = 1)."""
    images = tf.convert_to_tensor(images, tf.float32)
    sigma = _uniform(tf.reshape(_batch_size(images), [1]), _as_seed(seed), *BLUR_SIGMA_RANGE)
    return gaussian_blur(images, sigma)


# --------------------------------------------------------------------------------------------
# The SimCLR augmentation of a batch
# --------------------------------------------------------------------------------------------


@gin.configurable("simclr_augment", allowlist=["color_jitter_strength"])
@_no_autograph
def simclr_augment(
    images,
    blur,
    color_jitter_strength=1.0,
    seed=None,
    crop=True,
    flip=True,
    color_distort=True,
):
    """SimCLR v1 training augmentation of a batch of images in [-1, 1].

    Per image, independently: random resized crop (bicubic back to H x W), horizontal flip
    (p = 0.5), colour jitter (p = 0.8) then grayscale (p = 0.2), clip to [0, 1]; then, if
    `blur`, a Gaussian blur (p = 1, sigma ~ U[0.1, 2]). Works on [0, 1] internally.

    Args:
      images: float [N, H, W, 3] in [-1, 1]; H, W, 3 static, N may be dynamic.
      blur: Python bool, blur every image (the query copies of a SimCLR episode).
      color_jitter_strength: Python float >= 0 (gin: ``simclr_augment.color_jitter_strength``).
      seed: see the module docstring.
      crop, flip, color_distort: Python bools to switch stages off (tests / inspection).

    Returns:
      float32 [N, H, W, 3] in [-1, 1], same static shape as `images`.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    seed = _as_seed(seed)
    flags = dict(
        blur=bool(blur),
        color_jitter_strength=float(color_jitter_strength),
        crop=bool(crop),
        flip=bool(flip),
        color_distort=bool(color_distort),
    )
    if tf.executing_eagerly():
        # tf.map_fn runs op by op in eager mode: eager callers get a compiled graph.
        return _compiled_augment(images.shape[1:], flags)(images, seed)
    return _augment(images, seed, **flags)


_COMPILED = {}


def _compiled_augment(image_shape, flags):
    """A tf.function of `_augment` for one image shape (any batch size) and one set of flags."""
    key = (tuple(image_shape), tuple(sorted(flags.items())))
    if key not in _COMPILED:
        signature = [
            tf.TensorSpec([None] + list(image_shape), tf.float32),
            tf.TensorSpec([2], tf.int64),
        ]
        _COMPILED[key] = tf.function(
            lambda images, seed: _augment(images, seed, **flags),
            input_signature=signature,
            autograph=False,
        )
    return _COMPILED[key]


def _augment(images, seed, blur, color_jitter_strength, crop, flip, color_distort):
    crop_seed, flip_seed, jitter_seed, gray_seed, blur_seed = tf.unstack(_split(seed, 5))
    x = (images + 1.0) / 2.0
    if crop:
        x = random_resized_crop(x, seed=crop_seed)
    if flip:
        x = random_flip_left_right(x, seed=flip_seed)
    if color_distort:
        x = random_color_jitter(x, strength=color_jitter_strength, seed=jitter_seed)
        x = random_grayscale(x, seed=gray_seed)
    x = tf.clip_by_value(x, 0.0, 1.0)
    if blur:
        x = random_blur(x, seed=blur_seed)
    out = tf.clip_by_value(x * 2.0 - 1.0, -1.0, 1.0)
    out.set_shape(images.shape)
    return out


# --------------------------------------------------------------------------------------------
# Episode conversion
# --------------------------------------------------------------------------------------------


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


@_no_autograph
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


@_no_autograph
def to_simclr_episode(episode, color_jitter_strength=None, seed=None, augment=True):
    """Converts an episode into a SimCLR episode (protocol spec, section 4.1).

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
        support_seed, query_seed = tf.unstack(_split(_as_seed(seed), 2))
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


@_no_autograph
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
    coin_seed, convert_seed = tf.unstack(_split(_as_seed(seed), 2))
    u = _uniform([], coin_seed, 0.0, 1.0)
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


# --------------------------------------------------------------------------------------------
# Visualization
# --------------------------------------------------------------------------------------------

_GRID_GAP = 2


def _to_uint8(images):
    x = np.asarray(images, np.float32)
    return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def save_episode_grid(episode, path, max_rows=16):
    """Writes a PNG with one row per query: its support image (left) and the query (right).

    For a SimCLR episode the left image is the support image the query was copied from
    (query label = support index); for a normal episode it is the first support image of the
    query's class. Images are separated and framed by a 2-pixel gray gap.

    Size: width ``2 W + 3 gap``, height ``R H + (R + 1) gap`` with ``R = min(Nq, max_rows)``.

    Args:
      episode: :class:`Episode` of numpy arrays or tensors, images in [-1, 1].
      path: output file (PNG).
      max_rows: maximum number of rows (queries shown).

    Returns:
      (height, width) of the written image.
    """
    from PIL import Image  # pylint: disable=import-outside-toplevel

    e = Episode(*[np.asarray(t) for t in episode])
    support_labels = e.support_labels.astype(np.int64)
    query_labels = e.query_labels.astype(np.int64)
    rows = min(len(query_labels), int(max_rows))
    if rows <= 0:
        raise ValueError("the episode has no query images to show")
    h, w = e.support_images.shape[1:3]
    gap = _GRID_GAP
    canvas = np.full((rows * h + (rows + 1) * gap, 2 * w + 3 * gap, 3), 128, np.uint8)
    support = _to_uint8(e.support_images)
    query = _to_uint8(e.query_images)
    for r in range(rows):
        matches = np.nonzero(support_labels == query_labels[r])[0]
        top = gap + r * (h + gap)
        if len(matches):
            canvas[top : top + h, gap : gap + w] = support[matches[0]]
        canvas[top : top + h, 2 * gap + w : 2 * gap + 2 * w] = query[r]
    Image.fromarray(canvas).save(path, format="PNG")
    return canvas.shape[:2]


def _first_episode_from_pipeline(args):
    """One decoded episode of `args.dataset` from the single-source pipeline (lazy imports)."""
    import os  # pylint: disable=import-outside-toplevel

    try:
        # pylint: disable=import-outside-toplevel
        from ctx_tf.data import dataset_spec as spec_lib
        from ctx_tf.data import pipeline
        from ctx_tf.data import sampling
    except ImportError as exc:
        raise SystemExit(
            f"ctx_tf.data.pipeline is not available ({exc}); "
            "use save_episode_grid() on an Episode you build yourself."
        ) from exc
    make = getattr(pipeline, "make_one_source_episode_pipeline", None)
    if make is None:
        raise SystemExit(
            "ctx_tf.data.pipeline has no make_one_source_episode_pipeline; "
            "use save_episode_grid() on an Episode you build yourself."
        )
    spec = spec_lib.load_dataset_spec(os.path.join(args.records_root_dir, args.dataset))
    use_dag, use_bilevel = pipeline.use_ontologies(args.dataset)
    dataset = make(
        spec,
        use_dag,
        use_bilevel,
        spec_lib.Split[args.split.upper()],
        sampling.EpisodeDescriptionConfig(),
        image_size=args.image_size,
        shuffle_buffer_size=1000,
        seed=args.seed,
    )
    element = next(iter(dataset))
    # The pipeline yields (episode, source_id).
    if not isinstance(element, Episode) and len(element) == 2:
        element = element[0]
    return Episode(*element)


def main(argv=None):
    """Command line: writes a PNG with one SimCLR episode (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m ctx_tf.data.simclr",
        description="Write a PNG grid of one SimCLR episode: support image | augmented query.",
    )
    parser.add_argument("--records_root_dir", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", default="simclr_episode.png")
    parser.add_argument("--split", default="train")
    parser.add_argument("--image_size", type=int, default=84)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max_rows", type=int, default=16)
    parser.add_argument("--color_jitter_strength", type=float, default=None)
    args = parser.parse_args(argv)
    episode = _first_episode_from_pipeline(args)
    simclr = to_simclr_episode(
        episode, color_jitter_strength=args.color_jitter_strength, seed=args.seed
    )
    height, width = save_episode_grid(simclr, args.out, max_rows=args.max_rows)
    print(
        f"wrote {args.out} ({width}x{height}): {min(args.max_rows, len(simclr.query_labels))} of "
        f"{len(simclr.query_labels)} queries, way {len(simclr.support_labels)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
