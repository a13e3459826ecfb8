"""Tests of ctx_tf.data.writing.image_encoding against Pillow applied by hand (official rules)."""

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from ctx_tf.data.writing import image_encoding
from ctx_tf.data.writing.errors import SourceWriteError


def _saved(img, fmt="JPEG", **kwargs):
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _rgb_image(rng):
    return Image.fromarray(rng.randint(0, 256, size=(20, 30, 3), dtype=np.uint8))


def test_encode_image_file_keeps_rgb_files_in_the_output_format(tmp_path, rng_seed):
    rng = np.random.RandomState(rng_seed)
    jpeg = _saved(_rgb_image(rng), quality=93)  # not Pillow's default: re-encoding would show
    assert image_encoding.encode_image_file(jpeg) == jpeg
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg)
    assert image_encoding.encode_image_file(path) == jpeg
    assert image_encoding.encode_image_file(str(path)) == jpeg
    png = _saved(_rgb_image(rng), "PNG")
    assert image_encoding.encode_image_file(png, output_format="PNG") == png


def test_encode_image_file_reencodes_like_the_official_converter(rng_seed):
    rng = np.random.RandomState(rng_seed)
    rgb = _rgb_image(rng)
    png = _saved(rgb, "PNG")
    # Another format: converted and saved with Pillow's defaults.
    assert image_encoding.encode_image_file(png) == _saved(rgb)
    # Not RGB (grayscale JPEG): converted to RGB.
    gray = Image.fromarray(rng.randint(0, 256, size=(16, 12), dtype=np.uint8))
    gray_jpeg = _saved(gray)
    decoded = Image.open(io.BytesIO(gray_jpeg))
    assert image_encoding.encode_image_file(gray_jpeg) == _saved(decoded.convert("RGB"))
    # Cropped and inverted (convert, crop, then invert).
    jpeg = _saved(rgb, quality=90)
    opened = Image.open(io.BytesIO(jpeg))
    box = (3, 2, 25, 17)
    assert image_encoding.encode_image_file(jpeg, crop=box) == _saved(opened.crop(box))
    assert image_encoding.encode_image_file(jpeg, invert=True) == _saved(ImageOps.invert(opened))
    both = image_encoding.encode_image_file(jpeg, crop=box, invert=True)
    assert both == _saved(ImageOps.invert(opened.convert("RGB").crop(box)))
    assert both != image_encoding.encode_image_file(jpeg, crop=box)


def test_encode_bitmap_row(rng_seed):
    rng = np.random.RandomState(rng_seed)
    bool_row = rng.rand(28 * 28) < 0.3
    by_hand = Image.fromarray(bool_row.astype(np.uint8).reshape(28, 28) * 255).convert("RGB")
    assert image_encoding.encode_bitmap_row(bool_row) == _saved(by_hand)
    uint8_row = rng.randint(0, 256, size=28 * 28, dtype=np.uint8)
    by_hand = Image.fromarray(uint8_row.reshape(28, 28)).convert("RGB")
    encoded = image_encoding.encode_bitmap_row(uint8_row)
    assert encoded == _saved(by_hand)
    decoded = Image.open(io.BytesIO(encoded))
    assert decoded.format == "JPEG" and decoded.mode == "RGB" and decoded.size == (28, 28)
    with pytest.raises(SourceWriteError, match="square"):
        image_encoding.encode_bitmap_row(np.zeros(27, np.uint8))


def test_encode_jpeg_of_arrays_and_files():
    arr = np.full((8, 8, 3), 100, np.uint8)
    jpeg = image_encoding.encode_jpeg(arr)
    assert jpeg == _saved(Image.fromarray(arr))
    assert image_encoding.encode_jpeg(jpeg) == jpeg  # RGB JPEG kept byte for byte
    assert image_encoding.encode_jpeg(jpeg, invert=True) == image_encoding.encode_image_file(
        jpeg, invert=True)
    assert image_encoding.encode_jpeg(np.ones((4, 4), bool)) == _saved(
        Image.fromarray(np.full((4, 4), 255, np.uint8)).convert("RGB"))
    with pytest.raises(SourceWriteError, match="dtype"):
        image_encoding.encode_jpeg(np.zeros((4, 4), np.float32))
    with pytest.raises(SourceWriteError, match="shape"):
        image_encoding.encode_jpeg(np.zeros((4, 4, 2), np.uint8))
