"""Tests of ctx_tf.data.simclr.augment and ctx_tf.data.simclr.color: the SimCLR v1 augmentation.

Statistical checks draw a fresh seed per run (printed on failure) and use 5-sigma binomial
bounds, so a correct implementation fails them with probability < 1e-6 per check.
"""

import itertools
import math

import gin
import numpy as np
import pytest
import tensorflow as tf

from ctx_tf.data.simclr import augment
from ctx_tf.data.simclr import color
from tests.data.simclr.helpers import colourful, seed_pair, within_5_sigma


# ----------------------------------------------------------------------------------------------
# Augmentation
# ----------------------------------------------------------------------------------------------


_augment = tf.function(augment.simclr_augment)


def test_flip_rate_and_independence(rng_seed):
    n = 2000
    images = colourful(n=n)
    out = augment.simclr_augment(
        images, blur=False, seed=seed_pair(rng_seed), crop=False, color_distort=False
    ).numpy()
    same = np.abs(out - images).reshape(n, -1).max(axis=1) < 1e-6
    mirrored = np.abs(out - images[:, :, ::-1]).reshape(n, -1).max(axis=1) < 1e-6
    assert np.all(same ^ mirrored)
    assert within_5_sigma(int(mirrored.sum()), n, 0.5)
    # Independent per image: neighbours agree half of the time.
    agree = int(np.sum(mirrored[1:] == mirrored[:-1]))
    assert within_5_sigma(agree, n - 1, 0.5)


def test_grayscale_and_jitter_rates(rng_seed):
    n = 2000
    images = colourful(n=n)
    out = augment.simclr_augment(
        images, blur=False, seed=seed_pair(rng_seed), crop=False, flip=False
    ).numpy()
    assert out.min() >= -1.0 and out.max() <= 1.0
    flat = out.reshape(n, -1, 3)
    spread = np.abs(flat - flat.mean(axis=2, keepdims=True)).max(axis=(1, 2))
    is_gray = spread < 1e-5
    unit = (images[0] + 1) / 2
    gray_of_input = np.tile((unit @ np.array([0.2989, 0.587, 0.114], np.float32))[..., None],
                            [1, 1, 3]) * 2 - 1
    close_to_input = np.abs(out - images).reshape(n, -1).max(axis=1) < 1e-4
    close_to_gray_input = np.abs(out - gray_of_input).reshape(n, -1).max(axis=1) < 1e-4
    not_jittered = np.where(is_gray, close_to_gray_input, close_to_input)
    assert within_5_sigma(int(is_gray.sum()), n, 0.2)
    assert within_5_sigma(int((~not_jittered).sum()), n, 0.8)
    # Independence of the two coins.
    both = int(np.sum(is_gray & ~not_jittered))
    assert within_5_sigma(both, n, 0.16)
    agree = int(np.sum(is_gray[1:] == is_gray[:-1]))
    assert within_5_sigma(agree, n - 1, 0.2**2 + 0.8**2)


def test_jitter_parameter_ranges_and_uniform_order(rng_seed):
    n = 4800
    images = tf.zeros([n, 1, 1, 3])
    params, order = color._sample_jitter(images, 1.0, seed_pair(rng_seed))
    params, order = params.numpy(), order.numpy()
    lo = np.array([-0.8, 0.2, 0.2, -0.2])
    hi = np.array([0.8, 1.8, 1.8, 0.2])
    assert np.all(params >= lo) and np.all(params <= hi)
    # Each parameter uniform: a quarter of the draws fall in the lowest quarter of the range.
    in_low_quarter = (params < lo + (hi - lo) / 4).sum(axis=0)
    assert all(within_5_sigma(int(c), n, 0.25) for c in in_low_quarter)
    assert np.all(np.sort(order, axis=1) == np.arange(4))
    counts = {}
    for row in map(tuple, order):
        counts[row] = counts.get(row, 0) + 1
    assert set(counts) == set(itertools.permutations(range(4)))
    assert all(within_5_sigma(c, n, 1 / 24) for c in counts.values())
    # Strength scales the ranges; factors never go negative.
    params, _ = color._sample_jitter(images, 2.0, seed_pair(rng_seed, 1))
    params = params.numpy()
    assert params[:, 1].min() >= 0 and params[:, 2].min() >= 0 and params[:, 1].max() > 2.0


def test_batched_jitter_ops_match_tf_image():
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 1, (5, 6, 6, 3)).astype(np.float32)
    values = [-0.7, -0.2, 0.0, 0.3, 0.8]
    factors = [0.2, 0.5, 1.0, 1.3, 1.8]
    hues = [-0.2, -0.05, 0.0, 0.1, 0.2]
    b = color.adjust_brightness(images, values).numpy()
    c = color.adjust_contrast(images, factors).numpy()
    s = color.adjust_saturation(images, factors).numpy()
    h = color.adjust_hue(images, hues).numpy()
    for i in range(5):
        np.testing.assert_allclose(b[i], images[i] + values[i], atol=1e-6)
        np.testing.assert_allclose(
            c[i], tf.image.adjust_contrast(images[i], factors[i]).numpy(), atol=1e-5
        )
        mean = images[i].mean(axis=(0, 1))
        np.testing.assert_allclose(c[i], (images[i] - mean) * factors[i] + mean, atol=1e-5)
        np.testing.assert_allclose(
            s[i], tf.image.adjust_saturation(images[i], factors[i]).numpy(), atol=1e-5
        )
        np.testing.assert_allclose(h[i], tf.image.adjust_hue(images[i], hues[i]).numpy(), atol=1e-5)


def test_jitter_follows_per_image_order_and_flags():
    rng = np.random.default_rng(2)
    images = rng.uniform(0.2, 0.8, (4, 6, 6, 3)).astype(np.float32)
    params = tf.constant([[0.5, 1.8, 1.0, 0.0]] * 4)
    order = tf.constant([[0, 1, 2, 3], [1, 0, 2, 3], [0, 1, 2, 3], [3, 2, 1, 0]])
    apply = tf.constant([True, True, False, True])
    out = color._jitter_batch(images, params, order, apply).numpy()
    mean = images.mean(axis=(1, 2), keepdims=True)

    def contrast(x, m):
        return np.clip((x - m) * 1.8 + m, 0, 1)

    bright_first = np.clip(images[0] + 0.5, 0, 1)
    np.testing.assert_allclose(
        out[0], contrast(bright_first, bright_first.mean(axis=(0, 1))), atol=1e-5
    )
    np.testing.assert_allclose(out[1], np.clip(contrast(images[1], mean[1]) + 0.5, 0, 1), atol=1e-5)
    np.testing.assert_array_equal(out[2], images[2])  # not applied: untouched
    np.testing.assert_allclose(out[3], np.clip(contrast(images[3], mean[3]) + 0.5, 0, 1), atol=1e-5)
    assert np.abs(out[0] - np.clip(contrast(images[0], mean[0]) + 0.5, 0, 1)).max() > 0.05


def test_crop_boxes_within_bounds(rng_seed):
    n = 4000
    boxes = tf.function(lambda: augment.sample_crop_boxes(n, 224, 224, seed_pair(rng_seed)))
    begin, size = boxes()
    begin, size = begin.numpy(), size.numpy()
    assert np.all(begin >= 0) and np.all(begin + size <= 224) and np.all(size >= 1)
    area = size[:, 0] * size[:, 1] / 224.0**2
    aspect = size[:, 1] / size[:, 0]
    # min_object_covered = 0.1 of the whole image raises the minimum area from 0.08 to 0.1.
    assert area.min() >= 0.1 - 1e-3 and area.max() <= 1.0
    assert aspect.min() >= 0.75 * 0.97 and aspect.max() <= 4 / 3 * 1.03
    # Spread over the whole range (the op's area law puts ~21% in [0.1, 0.2), ~6% above 0.8).
    assert np.mean(area < 0.2) > 0.1 and np.mean(area > 0.8) > 0.02
    # Non-square images: aspect ratio range is scaled by W / H, i.e. crops keep roughly the
    # image's aspect ratio within (3/4, 4/3) relative.
    begin, size = augment.sample_crop_boxes(500, 40, 80, seed_pair(rng_seed, 1))
    ratio = (size[:, 1] / size[:, 0]).numpy() / 2.0
    assert ratio.min() >= 0.75 * 0.85 and ratio.max() <= 4 / 3 * 1.15


def _legacy_bicubic_reference(image, out_h, out_w):
    """NumPy version of TF1 resize_bicubic (align_corners=False, half_pixel_centers=False)."""
    table_size = 1024
    a = -0.75
    xs = np.arange(table_size + 1) / table_size
    near = (((a + 2) * xs - (a + 3)) * xs * xs + 1).astype(np.float32)
    x1 = xs + 1.0
    far = (((a * x1 - 5 * a) * x1 + 8 * a) * x1 - 4 * a).astype(np.float32)

    def weights(in_size, out_size):
        scale = np.float32(in_size) / np.float32(out_size)
        mat = np.zeros((out_size, in_size), np.float64)
        for o in range(out_size):
            loc = np.float32(o) * scale
            base = int(np.floor(loc))
            offset = int(np.rint(np.float32(loc - base) * table_size))
            w = [far[offset], near[offset], near[table_size - offset], far[table_size - offset]]
            for k in range(4):
                mat[o, min(max(base - 1 + k, 0), in_size - 1)] += w[k]
        return mat

    wy = weights(image.shape[0], out_h)
    wx = weights(image.shape[1], out_w)
    return np.einsum("oi,ijc,pj->opc", wy, image.astype(np.float64), wx)


@pytest.mark.parametrize("in_hw,out_hw", [((13, 9), (28, 28)), ((28, 28), (28, 28)),
                                          ((40, 31), (28, 28))])
def test_resize_is_tf1_legacy_bicubic(in_hw, out_hw):
    rng = np.random.default_rng(3)
    image = rng.uniform(0, 1, in_hw + (3,)).astype(np.float32)
    ours = augment.resize_bicubic_legacy(image[None], out_hw)[0].numpy()
    np.testing.assert_allclose(ours, _legacy_bicubic_reference(image, *out_hw), atol=2e-5)
    compat = tf.compat.v1.image.resize(
        image[None], out_hw, method=tf.compat.v1.image.ResizeMethod.BICUBIC
    )[0].numpy()
    np.testing.assert_array_equal(ours, compat)
    if in_hw != out_hw:
        tf2 = tf.image.resize(image[None], out_hw, method="bicubic")[0].numpy()
        assert np.abs(tf2 - ours).max() > 1e-2


def test_random_resized_crop_uses_its_boxes(rng_seed):
    rng = np.random.default_rng(rng_seed)
    images = rng.uniform(0, 1, (6, 28, 28, 3)).astype(np.float32)
    seed = seed_pair(rng_seed)
    out = augment.random_resized_crop(images, seed=seed).numpy()
    begin, size = augment.sample_crop_boxes(6, 28, 28, seed=seed)
    for i, ((y, x), (h, w)) in enumerate(zip(begin.numpy(), size.numpy())):
        expected = _legacy_bicubic_reference(images[i, y : y + h, x : x + w], 28, 28)
        np.testing.assert_allclose(out[i], expected, atol=2e-5)


def test_blur_kernel_size_and_normalization():
    assert augment.blur_kernel_taps(224) == 23
    assert augment.blur_kernel_taps(84) == 9
    assert augment.blur_kernel_taps(28) == 3
    assert augment.blur_kernel_taps(9) == 1
    kernels = augment.gaussian_kernel_1d(23, tf.constant([0.1, 0.5, 1.0, 2.0])).numpy()
    assert kernels.shape == (4, 23)
    np.testing.assert_allclose(kernels.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(kernels, kernels[:, ::-1], atol=1e-7)
    x = np.arange(-11, 12)
    expected = np.exp(-(x**2) / 8.0)
    np.testing.assert_allclose(kernels[3], expected / expected.sum(), rtol=1e-5)


def test_gaussian_blur_matches_direct_convolution():
    rng = np.random.default_rng(5)
    images = rng.uniform(0, 1, (3, 20, 17, 3)).astype(np.float32)
    sigma = np.array([0.4, 1.0, 1.7], np.float32)
    taps = 7
    out = augment.gaussian_blur(images, sigma, taps=taps).numpy()
    r = taps // 2
    padded = np.pad(images, ((0, 0), (r, r), (r, r), (0, 0)))  # zero padding
    for i in range(3):
        k = np.exp(-(np.arange(-r, r + 1) ** 2) / (2 * sigma[i] ** 2))
        k2 = np.outer(k, k) / k.sum() ** 2
        expected = np.zeros((20, 17, 3))
        for dy in range(taps):
            for dx in range(taps):
                expected += k2[dy, dx] * padded[i, dy : dy + 20, dx : dx + 17]
        np.testing.assert_allclose(out[i], expected, atol=1e-5)


def test_random_blur_sigma_distribution_on_impulses(rng_seed):
    n, size = 1000, 84
    impulse = np.zeros((n, size, size, 1), np.float32)
    impulse[:, 42, 42, 0] = 1.0
    out = tf.function(augment.random_blur)(impulse, seed=seed_pair(rng_seed)).numpy()[..., 0]
    # Normalized: the response of an interior impulse sums to 1.
    np.testing.assert_allclose(out.sum(axis=(1, 2)), 1.0, atol=1e-4)
    # 9 taps: nothing outside the 9 x 9 square around the impulse.
    outside = out.copy()
    outside[:, 38:47, 38:47] = 0
    assert np.all(outside == 0)
    assert np.all(out[:, 42, 38] >= 0)
    # sigma from the ratio of neighbouring taps: k1 / k0 = exp(-1 / (2 sigma^2)).
    ratio = out[:, 42, 43] / out[:, 42, 42]
    sigma = np.sqrt(-1.0 / (2.0 * np.log(ratio)))
    assert sigma.min() >= 0.1 - 1e-3 and sigma.max() <= 2.0 + 1e-3
    assert within_5_sigma(int(np.sum(sigma < 1.05)), n, 0.5)
    assert within_5_sigma(int(np.sum(sigma < 0.575)), n, 0.25)


def test_blur_only_on_request(rng_seed):
    n = 200
    images = np.broadcast_to(np.float32([0.6, -0.2, 0.3]), (n, 20, 20, 3)).copy()
    kwargs = dict(seed=seed_pair(rng_seed), crop=False, flip=False, color_distort=False)
    plain = augment.simclr_augment(images, blur=False, **kwargs).numpy()
    np.testing.assert_allclose(plain, images, atol=1e-6)
    blurred = augment.simclr_augment(images, blur=True, **kwargs).numpy()
    # A constant image stays constant inside; zero padding darkens the border (towards -1).
    np.testing.assert_allclose(blurred[:, 1:-1, 1:-1], images[:, 1:-1, 1:-1], atol=1e-5)
    assert np.all(blurred[:, 0, 0] <= plain[:, 0, 0] + 1e-6)
    darker = np.abs(blurred[:, 0, 0, 0] - plain[:, 0, 0, 0]) > 1e-3
    # sigma ~ U[0.1, 2]: sigma > 0.5 (P = 0.79) always darkens the corner visibly.
    assert darker.sum() >= n * 0.79 - 5 * math.sqrt(n * 0.79 * 0.21)


@pytest.mark.compat
def test_shapes_range_and_graph_mode(rng_seed):
    spec = tf.TensorSpec([None, 28, 28, 3], tf.float32)

    @tf.function(input_signature=[spec])
    def augment_in_graph(x):
        out = augment.simclr_augment(x, blur=True, seed=seed_pair(rng_seed))
        assert out.shape.as_list() == [None, 28, 28, 3]
        return out

    rng = np.random.default_rng(rng_seed)
    images = rng.uniform(-1, 1, (40, 28, 28, 3)).astype(np.float32)
    images[:5] = 1.0
    images[5:10] = -1.0
    out = augment_in_graph(images).numpy()
    assert out.shape == images.shape and out.dtype == np.float32
    assert out.min() >= -1.0 and out.max() <= 1.0
    eager = augment.simclr_augment(images[:3], blur=False)
    assert eager.shape == (3, 28, 28, 3)


def test_identical_inputs_get_independent_augmentations(rng_seed):
    images = colourful(size=28, n=16, seed=rng_seed % 1000)
    out = augment.simclr_augment(images, blur=True, seed=seed_pair(rng_seed)).numpy()
    flat = out.reshape(16, -1)
    dist = np.abs(flat[:, None] - flat[None]).max(axis=2)
    assert np.all(dist[~np.eye(16, dtype=bool)] > 1e-4)


def test_seeded_augmentation_reproducible(rng_seed):
    images = np.random.default_rng(rng_seed).uniform(-1, 1, (5, 28, 28, 3)).astype(np.float32)
    seed = seed_pair(rng_seed)
    a = augment.simclr_augment(images, blur=True, seed=seed).numpy()
    b = augment.simclr_augment(images, blur=True, seed=seed).numpy()
    c = _augment(images, blur=True, seed=seed).numpy()  # graph mode
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, c, atol=1e-6)
    d = augment.simclr_augment(images, blur=True, seed=seed_pair(rng_seed, 1)).numpy()
    assert np.abs(a - d).max() > 1e-3
    # Python int and Generator seeds.
    e = augment.simclr_augment(images, blur=False, seed=7).numpy()
    f = augment.simclr_augment(images, blur=False, seed=[7, 0]).numpy()
    np.testing.assert_array_equal(e, f)
    g1 = augment.simclr_augment(images, blur=False, seed=tf.random.Generator.from_seed(3))
    g2 = augment.simclr_augment(images, blur=False, seed=tf.random.Generator.from_seed(3))
    np.testing.assert_array_equal(g1.numpy(), g2.numpy())


def test_constant_seed_in_graph_matches_eager(rng_seed):
    """Grappler constant-folds everything that depends only on a constant seed; the result
    must still be the eager one (an earlier version crashed or could mix up jitter ops)."""
    images = np.random.default_rng(rng_seed).uniform(-1, 1, (40, 28, 28, 3)).astype(np.float32)
    pair = [rng_seed, 5]
    graph = tf.function(lambda x: augment.simclr_augment(x, blur=True, seed=pair))(images)
    eager = augment.simclr_augment(images, blur=True, seed=pair)  # seed is a graph input
    np.testing.assert_allclose(graph.numpy(), eager.numpy(), atol=1e-5)


def test_gin_color_jitter_strength(rng_seed, clean_gin):
    images = colourful(size=8, n=300)
    kwargs = dict(blur=False, seed=seed_pair(rng_seed), crop=False, flip=False)
    gin.parse_config("simclr_augment.color_jitter_strength = 0.0")
    out = augment.simclr_augment(images, **kwargs).numpy()
    # Strength 0: every image is either unchanged or the grayscale version.
    unchanged = np.abs(out - images).reshape(300, -1).max(axis=1) < 1e-4
    flat = out.reshape(300, -1, 3)
    gray = np.abs(flat - flat.mean(axis=2, keepdims=True)).max(axis=(1, 2)) < 1e-5
    assert np.all(unchanged | gray) and unchanged.any() and gray.any()
