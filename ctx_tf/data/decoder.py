"""Record decoders: serialized `tf.train.Example` -> image tensor (or raw bytes).

Every decoder is a callable on one record string, usable inside `tf.data` / `tf.map_fn`.
`ImageDecoder` follows the official preprocessing exactly: decode to RGB, squash to a square
with bilinear `align_corners=True` resizing (TF1 semantics, not TF2's half-pixel
`tf.image.resize`), then map to [-1, 1] with `2 * (x / 255 - 0.5)`.

When the pipeline passes the record's location (`class_id`, `record_index`, `path`), the
decoder checks, before TensorFlow's own decoding, that the record's `label` is the class id
of its file and that the `image` bytes start like an image (JPEG, PNG, GIF or BMP); a failure
raises `InvalidArgumentError` whose message names the file, class id and record position.
Bytes that look like an image but are corrupt inside still fail in TensorFlow's decoder.
"""

import copy

import gin
import tensorflow as tf

# Leading bytes of the formats `tf.io.decode_image` reads.
_IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")


def parse_record(example_string):
    """Parses the two official features: `image` (bytes) and `label` (int64)."""
    return tf.io.parse_single_example(
        example_string,
        features={
            "image": tf.io.FixedLenFeature([], tf.string),
            "label": tf.io.FixedLenFeature([], tf.int64),
        },
    )


def _where(class_id, record_index, path):
    """Assert payload naming where a record came from."""
    return ["file", path if path is not None else "<unknown file>",
            "class id", class_id, "record index (position in the file)",
            record_index if record_index is not None else tf.constant(-1, tf.int64)]


def _check_record(image_bytes, label, class_id, record_index, path):
    """Asserts the record is labelled with its file's class and holds image bytes."""
    checks = []
    if class_id is not None:
        class_id = tf.cast(class_id, tf.int64)
        checks.append(tf.debugging.Assert(
            tf.equal(label, class_id),
            ["ctx_tf: record label", label, "differs from its class id;"]
            + _where(class_id, record_index, path)))
        head = tf.strings.substr(image_bytes, 0, 4)
        looks_like_image = tf.reduce_any(tf.stack([
            tf.equal(tf.strings.substr(image_bytes, 0, len(sig)), sig)
            for sig in _IMAGE_SIGNATURES
        ]))
        checks.append(tf.debugging.Assert(
            looks_like_image,
            ["ctx_tf: undecodable image: the 'image' feature is empty or not a JPEG/PNG/GIF/BMP "
             "(first bytes", head, ");"] + _where(class_id, record_index, path)))
    return checks


@gin.configurable
class DataAugmentation:
    """Official per-image augmentation: additive Gaussian noise, then reflect-pad + crop.

    All four arguments are required, as in the official gin surface. With the official
    values (`jitter_amount=0`, `gaussian_noise_std=0.0`) it is the identity.
    """

    def __init__(self, enable_jitter, jitter_amount, enable_gaussian_noise, gaussian_noise_std):
        if int(jitter_amount) < 0:
            raise ValueError(f"DataAugmentation.jitter_amount must be >= 0, got {jitter_amount}")
        if float(gaussian_noise_std) < 0:
            raise ValueError(
                f"DataAugmentation.gaussian_noise_std must be >= 0, got {gaussian_noise_std}")
        self.enable_jitter = bool(enable_jitter)
        self.jitter_amount = int(jitter_amount)
        self.enable_gaussian_noise = bool(enable_gaussian_noise)
        self.gaussian_noise_std = float(gaussian_noise_std)

    def __call__(self, image):
        """Augments one float image `[size, size, 3]`; the output has the same shape."""
        if self.enable_gaussian_noise:
            image = image + tf.random.normal(tf.shape(image)) * self.gaussian_noise_std
        if self.enable_jitter:
            j = self.jitter_amount
            size = tf.shape(image)
            image = tf.pad(image, [[j, j], [j, j], [0, 0]], mode="REFLECT")
            image = tf.image.random_crop(image, size)
        return image

    def __repr__(self):
        return (f"DataAugmentation(enable_jitter={self.enable_jitter}, "
                f"jitter_amount={self.jitter_amount}, "
                f"enable_gaussian_noise={self.enable_gaussian_noise}, "
                f"gaussian_noise_std={self.gaussian_noise_std})")


def resize_align_corners(image, image_size):
    """Bilinear resize of `[h, w, c]` to `[image_size, image_size, c]`, TF1 align_corners."""
    return tf.compat.v1.image.resize(
        image, [image_size, image_size], method=tf.image.ResizeMethod.BILINEAR,
        align_corners=True)


@gin.configurable
class ImageDecoder:
    """Record -> float32 image `[image_size, image_size, 3]` in [-1, 1] (before noise).

    Args:
      image_size: side of the output; the pipelines set it from `image_size` /
        `DataConfig.image_height` (on a copy; the configured object is not modified).
      data_augmentation: optional `DataAugmentation` applied after scaling.
      skip_tfexample_decoding: the input strings are raw image bytes, not Examples (label -1).
    """

    out_type = tf.float32

    def __init__(self, image_size=None, data_augmentation=None, skip_tfexample_decoding=False):
        self.image_size = image_size
        self.data_augmentation = data_augmentation
        self.skip_tfexample_decoding = skip_tfexample_decoding

    def with_image_size(self, image_size):
        """A copy decoding to `image_size` (None keeps this decoder's own size)."""
        decoder = copy.copy(self)
        if image_size is not None:
            decoder.image_size = int(image_size)
        return decoder

    def __call__(self, example_string, class_id=None, record_index=None, path=None):
        return self.decode_with_label(example_string, class_id, record_index, path)[0]

    def decode_with_label(self, example_string, class_id=None, record_index=None, path=None):
        """Returns `(image, label)`; label int32 (-1 with `skip_tfexample_decoding`).

        `class_id`, `record_index` and `path` (scalar tensors, optional) locate the record
        for the checks and error messages described in the module docstring.
        """
        if self.image_size is None:
            raise ValueError(
                "ImageDecoder.image_size is not set: pass image_size to the pipeline (the "
                "trainer uses DataConfig.image_height) or bind ImageDecoder.image_size")
        if self.skip_tfexample_decoding:
            image_bytes = example_string
            label = tf.constant(-1, tf.int64)
            checks = []
        else:
            parsed = parse_record(example_string)
            image_bytes, label = parsed["image"], parsed["label"]
            checks = _check_record(image_bytes, label, class_id, record_index, path)
        with tf.control_dependencies(checks):
            image_bytes = tf.identity(image_bytes)
        image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        image = resize_align_corners(image, self.image_size)
        image = 2.0 * (tf.cast(image, tf.float32) / 255.0 - 0.5)
        if self.data_augmentation is not None:
            image = self.data_augmentation(image)
        image = tf.ensure_shape(image, [self.image_size, self.image_size, 3])
        return image, tf.cast(label, tf.int32)

    def __repr__(self):
        return (f"ImageDecoder(image_size={self.image_size}, "
                f"data_augmentation={self.data_augmentation!r}, "
                f"skip_tfexample_decoding={self.skip_tfexample_decoding})")


@gin.configurable
class StringDecoder:
    """Record -> its undecoded `image` bytes (scalar tf.string)."""

    out_type = tf.string

    def with_image_size(self, image_size):
        del image_size  # bytes have no size
        return self

    def __call__(self, example_string, class_id=None, record_index=None, path=None):
        parsed = parse_record(example_string)
        checks = _check_record(parsed["image"], parsed["label"], class_id, record_index, path)
        with tf.control_dependencies(checks):
            return tf.identity(parsed["image"])

    def __repr__(self):
        return "StringDecoder()"
