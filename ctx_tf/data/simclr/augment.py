"""SimCLR (v1) augmentation as plain TensorFlow functions that run inside ``tf.data``.

Graph mode and dynamic batch sizes work; static image shapes are preserved.

Value ranges
------------
* :func:`simclr_augment`, :func:`to_simclr_episode` and :func:`maybe_convert_to_simclr` take and
  return images in ``[-1, 1]`` (the range the decoder produces).
* The individual batch ops (:func:`random_resized_crop`, :func:`random_flip_left_right`,
  :func:`color_jitter`, :func:`random_color_jitter`, :func:`random_grayscale`,
  :func:`random_blur`, :func:`gaussian_blur`) work on images in ``[0, 1]``, like the SimCLR
  reference code, and take a batch ``[N, H, W, 3]``. Every image of a batch gets its own,
  independent random parameters.

Seeds: every random function takes ``seed``, see :mod:`ctx_tf.data.simclr.seed_pairs`. The
colour distortion lives in :mod:`ctx_tf.data.simclr.color`.

Gin
---
The colour-jitter strength (the ``--color_jitter_strength`` flag of the reference code, default
1.0) is the gin parameter ``simclr_augment.color_jitter_strength``, e.g.::

    simclr_augment.color_jitter_strength = 0.5

It applies wherever a caller does not pass ``color_jitter_strength`` explicitly (that includes
:func:`to_simclr_episode` and :func:`maybe_convert_to_simclr` when their argument is ``None``).
"""

import gin
import tensorflow as tf

from ctx_tf.data.simclr.color import random_color_jitter, random_grayscale
from ctx_tf.data.simclr.seed_pairs import (as_seed, batch_size_of, image_hw, no_autograph,
                                           per_image_coin, select_per_image, split_seed, uniform)

# Random resized crop (SimCLR v1 `crop_and_resize`).
CROP_MIN_OBJECT_COVERED = 0.1
CROP_AREA_RANGE = (0.08, 1.0)
CROP_MAX_ATTEMPTS = 100
# Aspect ratios (height-normalized, i.e. multiplied by W/H) of the random crop.
CROP_ASPECT_RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)

FLIP_PROBABILITY = 0.5
BLUR_SIGMA_RANGE = (0.1, 2.0)


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


@no_autograph
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
    seeds = split_seed(as_seed(seed), num_images)
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


@no_autograph
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


@no_autograph
def random_resized_crop(images, seed=None):
    """SimCLR v1 random resized crop of every image of a [N, H, W, C] batch in [0, 1].

    Box from :func:`sample_crop_boxes`, then :func:`crop_and_resize` (legacy bicubic). Bicubic
    interpolation can overshoot [0, 1] slightly; :func:`simclr_augment` clips at the end, as the
    reference does.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    begin, size = sample_crop_boxes(
        batch_size_of(images), images.shape[1], images.shape[2], seed=seed
    )
    return crop_and_resize(images, begin, size)


@no_autograph
def random_flip_left_right(images, seed=None, p=FLIP_PROBABILITY):
    """Mirrors each image of a [N, H, W, C] batch horizontally with probability `p`."""
    images = tf.convert_to_tensor(images, tf.float32)
    flip = per_image_coin(images, p, as_seed(seed))
    return select_per_image(flip, tf.reverse(images, axis=[2]), images)


# --------------------------------------------------------------------------------------------
# Gaussian blur
# --------------------------------------------------------------------------------------------


def blur_kernel_taps(image_size):
    """Number of taps of the SimCLR blur kernel for an image of height `image_size`.

    ``k = image_size // 10`` made odd as ``2 * (k // 2) + 1`` (224 -> 23, 84 -> 9).
    """
    k = image_size // 10
    return 2 * (k // 2) + 1


@no_autograph
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


@no_autograph
def gaussian_blur(images, sigma, taps=None):
    """Separable Gaussian blur of a [N, H, W, C] batch, each image with its own sigma.

    Horizontal then vertical depthwise convolution, ``SAME`` zero padding (borders darken), as
    in the reference. `sigma` is a scalar or [N]; `taps` defaults to
    ``blur_kernel_taps(H)``.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    n = batch_size_of(images)
    h, w = image_hw(images)
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


@no_autograph
def random_blur(images, seed=None):
    """Blurs each image with its own ``sigma ~ U[0.1, 2.0]`` (always, p = 1)."""
    images = tf.convert_to_tensor(images, tf.float32)
    sigma = uniform(tf.reshape(batch_size_of(images), [1]), as_seed(seed), *BLUR_SIGMA_RANGE)
    return gaussian_blur(images, sigma)


# --------------------------------------------------------------------------------------------
# The SimCLR augmentation of a batch
# --------------------------------------------------------------------------------------------


@gin.configurable("simclr_augment", allowlist=["color_jitter_strength"])
@no_autograph
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
    seed = as_seed(seed)
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
    crop_seed, flip_seed, jitter_seed, gray_seed, blur_seed = tf.unstack(split_seed(seed, 5))
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
