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


_FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
}


def parse_records(example_strings):
    """Vectorized `parse_record` of a 1-D batch of record strings."""
    return tf.io.parse_example(example_strings, _FEATURES)


def _check_records(image_bytes, labels, class_ids, record_indices, paths):
    """Asserts each record is labelled with its file's class and holds image bytes.

    Works on scalars or 1-D batches; on failure the message names the first bad record's
    file, class id and position in the file.
    """
    if class_ids is None:
        return []
    class_ids = tf.cast(class_ids, tf.int64)
    if record_indices is None:
        record_indices = tf.fill(tf.shape(class_ids), tf.constant(-1, tf.int64))
    if paths is None:
        paths = tf.fill(tf.shape(class_ids), "<unknown file>")
    looks_like_image = tf.reduce_any(tf.stack([
        tf.equal(tf.strings.substr(image_bytes, 0, len(sig)), sig)
        for sig in _IMAGE_SIGNATURES
    ], axis=0), axis=0)
    checks = []
    for ok, what in ((tf.equal(labels, class_ids),
                      "ctx_tf: a record's label differs from the class id of its file"),
                     (looks_like_image,
                      "ctx_tf: undecodable image: the 'image' feature is empty or not a "
                      "JPEG/PNG/GIF/BMP")):
        ok_flat = tf.reshape(ok, [-1])
        first = tf.argmin(tf.cast(ok_flat, tf.int32), output_type=tf.int32)

        def at(t, first=first):
            return tf.gather(tf.reshape(t, [-1]), first)

        checks.append(tf.debugging.Assert(
            tf.reduce_all(ok_flat),
            [what, "; file", at(paths), "class id", at(class_ids),
             "record index (position in the file)", at(record_indices), "label",
             at(labels)]))
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
        if self.skip_tfexample_decoding:
            image_bytes = example_string
            label = tf.constant(-1, tf.int64)
            checks = []
        else:
            parsed = parse_record(example_string)
            image_bytes, label = parsed["image"], parsed["label"]
            checks = _check_records(image_bytes, label, class_id, record_index, path)
        with tf.control_dependencies(checks):
            image_bytes = tf.identity(image_bytes)
        return self._decode_image(image_bytes), tf.cast(label, tf.int32)

    def decode_batch(self, example_strings, class_ids=None, record_indices=None, paths=None):
        """Decodes a 1-D batch: `[n, image_size, image_size, 3]` float32.

        Parsing and the record checks are vectorized; only the image decoding runs per
        image. Same values as mapping `__call__` over the batch.
        """
        if self.skip_tfexample_decoding:
            image_bytes, checks = example_strings, []
        else:
            parsed = parse_records(example_strings)
            image_bytes = parsed["image"]
            checks = _check_records(image_bytes, parsed["label"], class_ids, record_indices,
                                    paths)
        with tf.control_dependencies(checks):
            image_bytes = tf.identity(image_bytes)
        return tf.map_fn(self._decode_image, image_bytes, fn_output_signature=tf.float32)

    @tf.autograph.experimental.do_not_convert
    def _decode_image(self, image_bytes):
        if self.image_size is None:
            raise ValueError(
                "ImageDecoder.image_size is not set: pass image_size to the pipeline (the "
                "trainer uses DataConfig.image_height) or bind ImageDecoder.image_size")
        image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        image = resize_align_corners(image, self.image_size)
        image = 2.0 * (tf.cast(image, tf.float32) / 255.0 - 0.5)
        if self.data_augmentation is not None:
            image = self.data_augmentation(image)
        return tf.ensure_shape(image, [self.image_size, self.image_size, 3])

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
        checks = _check_records(parsed["image"], parsed["label"], class_id, record_index, path)
        with tf.control_dependencies(checks):
            return tf.identity(parsed["image"])

    def decode_batch(self, example_strings, class_ids=None, record_indices=None, paths=None):
        """Vectorized: the `image` bytes of a 1-D batch of records."""
        parsed = parse_records(example_strings)
        checks = _check_records(parsed["image"], parsed["label"], class_ids, record_indices,
                                paths)
        with tf.control_dependencies(checks):
            return tf.identity(parsed["image"])

    def __repr__(self):
        return "StringDecoder()"


# ----------------------------------------------------------------------------- pipeline decoders

# Official default decoders: no augmentation (the official gin's augmentation is the identity).
_DEFAULT_DECODER = "default ImageDecoder"


def _resolve_decoder(decoder, image_size, role):
    if isinstance(decoder, str) and decoder == _DEFAULT_DECODER:
        decoder = ImageDecoder()
    if decoder is None:
        return None
    decoder = decoder.with_image_size(image_size) if hasattr(decoder, "with_image_size") \
        else decoder
    if isinstance(decoder, ImageDecoder) and decoder.image_size is None:
        raise ValueError(f"{role} decoder: no image size; pass image_size to the pipeline "
                         "(DataConfig.image_height) or bind ImageDecoder.image_size")
    return decoder


# Registered under the official gin names, so official bindings such as
# `process_episode.support_decoder = @support/ImageDecoder()` carry over.
@gin.configurable("process_episode", allowlist=["support_decoder", "query_decoder"])
def episode_decoders(image_size, support_decoder=_DEFAULT_DECODER,
                     query_decoder=_DEFAULT_DECODER):
    """The support and query decoders (gin: `process_episode.support_decoder = ...`).

    Defaults: `ImageDecoder` without augmentation. None: keep the raw record strings.
    """
    return (_resolve_decoder(support_decoder, image_size, "support"),
            _resolve_decoder(query_decoder, image_size, "query"))


@gin.configurable("process_batch", allowlist=["batch_decoder"])
def batch_decoder_for(image_size, batch_decoder=_DEFAULT_DECODER):
    """The batch decoder (gin: `process_batch.batch_decoder = ...`)."""
    return _resolve_decoder(batch_decoder, image_size, "batch")
