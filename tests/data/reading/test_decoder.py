"""Decoders: official Example parsing, [-1, 1] scaling, align_corners bilinear resizing."""

import gin
import numpy as np
import pytest
import tensorflow as tf

from ctx_tf.data import config as config_lib
from ctx_tf.data.reading import decoder as decoder_lib
from tests.data.helpers import encode, example


def random_image(rng, height, width):
    return rng.randint(0, 256, size=[height, width, 3]).astype(np.uint8)


def align_corners_bilinear(image, size):
    """NumPy reference: output pixel i samples input coordinate i * (in - 1) / (out - 1)."""
    image = image.astype(np.float64)
    h, w = image.shape[:2]

    def coords(n_in):
        scale = (n_in - 1) / (size - 1) if size > 1 else 0.0
        x = np.arange(size) * scale
        lo = np.floor(x).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, x - lo

    y0, y1, fy = coords(h)
    x0, x1, fx = coords(w)
    top = image[y0][:, x0] * (1 - fx)[None, :, None] + image[y0][:, x1] * fx[None, :, None]
    bottom = image[y1][:, x0] * (1 - fx)[None, :, None] + image[y1][:, x1] * fx[None, :, None]
    return top * (1 - fy)[:, None, None] + bottom * fy[:, None, None]


@pytest.mark.compat
def test_png_round_trip_is_exact(rng_seed):
    rng = np.random.RandomState(rng_seed)
    image = random_image(rng, 28, 28)
    decoded, label = decoder_lib.ImageDecoder(image_size=28).decode_with_label(
        tf.constant(example(encode(image, "PNG"), label=7)))
    expected = 2 * (image.astype(np.float32) / 255.0 - 0.5)
    assert decoded.dtype == tf.float32 and label.dtype == tf.int32 and int(label) == 7
    np.testing.assert_array_equal(decoded.numpy(), expected)


def test_jpeg_round_trip_matches_the_jpeg_pixels(rng_seed):
    rng = np.random.RandomState(rng_seed)

    def blocky(h, w):  # flat 8x8 grey blocks survive JPEG almost exactly
        grey = np.kron(random_image(rng, h, w)[..., 0], np.ones([8, 8], np.uint8))
        return np.repeat(grey[..., None], 3, axis=-1)

    image = blocky(4, 4)
    jpeg = encode(image, "JPEG", quality=95)
    out = decoder_lib.ImageDecoder(image_size=32)(tf.constant(example(jpeg, 3))).numpy()
    pixels = tf.io.decode_jpeg(jpeg, channels=3).numpy()
    np.testing.assert_allclose(out, 2 * (pixels / 255.0 - 0.5), atol=1e-6)
    np.testing.assert_allclose(out, 2 * (image / 255.0 - 0.5), atol=2 * 3 / 255)
    # A 32 x 40 JPEG is squashed to 32 x 32 (aspect ratio not kept).
    wide = encode(blocky(4, 5), "JPEG", quality=95)
    out = decoder_lib.ImageDecoder().with_image_size(32)(tf.constant(example(wide, 3))).numpy()
    assert out.shape == (32, 32, 3)
    pixels = tf.io.decode_jpeg(wide, channels=3).numpy()
    np.testing.assert_allclose(out, 2 * (align_corners_bilinear(pixels, 32) / 255.0 - 0.5),
                               atol=2e-5)


@pytest.mark.parametrize("shape", [(13, 9), (40, 35), (28, 28), (1, 5)])
def test_resize_is_bilinear_with_align_corners(rng_seed, shape):
    rng = np.random.RandomState(rng_seed)
    image = random_image(rng, *shape)
    out = decoder_lib.ImageDecoder(image_size=28)(tf.constant(example(encode(image, "PNG"), 3)))
    expected = 2 * (align_corners_bilinear(image, 28) / 255.0 - 0.5)
    np.testing.assert_allclose(out.numpy(), expected, atol=2e-5)
    if shape == (40, 35):
        # Not what TF2's half-pixel resize gives: the corners are the input's corners.
        half_pixel = tf.image.resize(image, [28, 28]).numpy()
        assert np.abs(2 * (half_pixel / 255 - 0.5) - out.numpy()).max() > 1e-2
        np.testing.assert_allclose(out.numpy()[0, 0], 2 * (image[0, 0] / 255 - 0.5), atol=1e-6)
        np.testing.assert_allclose(out.numpy()[-1, -1], 2 * (image[-1, -1] / 255 - 0.5),
                                   atol=1e-6)


def test_grayscale_png_becomes_rgb_and_raw_bytes_mode(rng_seed):
    rng = np.random.RandomState(rng_seed)
    grey = random_image(rng, 10, 10)[..., 0]
    png = encode(grey, "PNG")
    out = decoder_lib.ImageDecoder(image_size=10)(tf.constant(example(png, 3)))
    np.testing.assert_array_equal(out.numpy(), np.repeat(
        (2 * (grey.astype(np.float32) / 255 - 0.5))[..., None], 3, axis=-1))
    raw, label = decoder_lib.ImageDecoder(
        image_size=10, skip_tfexample_decoding=True).decode_with_label(tf.constant(png))
    np.testing.assert_array_equal(raw.numpy(), out.numpy())
    assert int(label) == -1


def test_string_decoder_returns_the_image_bytes(rng_seed):
    png = encode(random_image(np.random.RandomState(rng_seed), 6, 6), "PNG")
    assert decoder_lib.StringDecoder()(tf.constant(example(png, 3))).numpy() == png


def test_data_augmentation(rng_seed):
    rng = np.random.RandomState(rng_seed)
    image = random_image(rng, 16, 16)
    record = tf.constant(example(encode(image, "PNG"), 3))
    plain = decoder_lib.ImageDecoder(image_size=16)(record).numpy()
    # The official gin values are the identity.
    official = decoder_lib.DataAugmentation(enable_jitter=True, jitter_amount=0,
                                            enable_gaussian_noise=True, gaussian_noise_std=0.0)
    np.testing.assert_array_equal(
        decoder_lib.ImageDecoder(16, data_augmentation=official)(record).numpy(), plain)
    # Jitter: a 16x16 window of the reflect-padded image.
    jitter = decoder_lib.DataAugmentation(True, 3, False, 0.0)
    out = decoder_lib.ImageDecoder(16, data_augmentation=jitter)(record).numpy()
    padded = np.pad(plain, [(3, 3), (3, 3), (0, 0)], mode="reflect")
    windows = [padded[i:i + 16, j:j + 16] for i in range(7) for j in range(7)]
    assert any(np.array_equal(out, w) for w in windows)
    # Noise: additive, with the requested standard deviation.
    noise = decoder_lib.DataAugmentation(False, 0, True, 0.5)
    big = tf.constant(example(encode(random_image(rng, 64, 64), "PNG"), 3))
    diff = (decoder_lib.ImageDecoder(64, data_augmentation=noise)(big)
            - decoder_lib.ImageDecoder(64)(big)).numpy()
    assert abs(diff.std() - 0.5) < 0.03 and abs(diff.mean()) < 0.03


def test_bad_records_fail_naming_file_class_and_position():
    decoder = decoder_lib.ImageDecoder(image_size=8)
    where = dict(class_id=tf.constant(5, tf.int64), record_index=tf.constant(11, tf.int64),
                 path=tf.constant("/records/toy/5.tfrecords"))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"undecodable image(.|\n)*/records/toy/5\.tfrecords(.|\n)*5"
                             r"(.|\n)*record index(.|\n)*11"):
        decoder(tf.constant(example(b"\x00garbage", label=5)), **where)
    png = encode(np.zeros([8, 8, 3], np.uint8), "PNG")
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"label differs from the class id(.|\n)*5\.tfrecords(.|\n)*"
                             r"class id(.|\n)*5(.|\n)*label(.|\n)*4"):
        decoder(tf.constant(example(png, label=4)), **where)
    with pytest.raises(ValueError, match="image_size is not set"):
        decoder_lib.ImageDecoder()(tf.constant(example(png, 3)))
    # The vectorized batch path names the first bad record of the batch.
    good = example(png, label=5)
    batch = tf.constant([good, good, example(b"GIF", label=5), good])
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"undecodable image(.|\n)*b\.tfrecords(.|\n)*record index"
                             r"(.|\n)*\n2\n"):
        decoder.decode_batch(batch, tf.constant([5, 5, 5, 5], tf.int64),
                             tf.range(4, dtype=tf.int64),
                             tf.constant(["a.tfrecords", "a.tfrecords", "b.tfrecords", "c"]))
    images = decoder.decode_batch(tf.constant([good, good]), tf.constant([5, 5], tf.int64))
    np.testing.assert_array_equal(images.numpy(), np.full([2, 8, 8, 3], -1.0, np.float32))


def test_gin_surface_uses_the_official_names():
    gin.clear_config()
    try:
        gin.parse_config("""
            DataConfig.image_height = 224
            DataConfig.shuffle_buffer_size = 300
            DataConfig.read_buffer_size_bytes = 4096
            DataConfig.num_prefetch = 2
            support/DataAugmentation.enable_jitter = True
            support/DataAugmentation.jitter_amount = 0
            support/DataAugmentation.enable_gaussian_noise = True
            support/DataAugmentation.gaussian_noise_std = 0.0
            support/ImageDecoder.data_augmentation = @support/DataAugmentation()
        """)
        data_config = config_lib.DataConfig()
        assert data_config.pipeline_kwargs() == dict(
            image_size=224, shuffle_buffer_size=300, read_buffer_size_bytes=4096,
            num_prefetch=2)
        with gin.config_scope("support"):
            decoder = decoder_lib.ImageDecoder()
        assert decoder.data_augmentation.enable_gaussian_noise
    finally:
        gin.clear_config()
    assert config_lib.DataConfig().image_height == 84
    with pytest.raises(ValueError, match="DataConfig.num_prefetch"):
        config_lib.DataConfig(num_prefetch=-1)
