"""Image bytes for the records, encoded the way the official converter encodes them.

Two official rules are reproduced exactly:

* an image file (:func:`encode_image_file`): its bytes are kept when it already is an RGB
  image in the output format and is neither cropped nor inverted; otherwise it is converted
  to RGB, cropped to the PIL box, colour-inverted (``ImageOps.invert``), in that order, and
  saved with Pillow's defaults for the format (JPEG: quality 75);
* one row of a single-channel ``.npy`` class file (:func:`encode_bitmap_row`): bool rows
  become 0/255, the row is reshaped to a square, converted to RGB and saved as a JPEG with
  Pillow's defaults.
"""

import io
import os

import numpy as np
from PIL import Image, ImageOps

from ctx_tf.data.writing.errors import SourceWriteError

# Pillow's own JPEG default, spelled out for callers that pass a quality explicitly.
DEFAULT_JPEG_QUALITY = 75


def array_to_pil(array):
    """A PIL image of a uint8/bool array [H, W], [H, W, 1] or [H, W, 3] (bool: True -> 255)."""
    array = np.asarray(array)
    if array.dtype == np.bool_:
        # Like a 1-bit image converted to 8 bits: True -> 255 (white), False -> 0.
        array = np.where(array, np.uint8(255), np.uint8(0))
    if array.dtype != np.uint8:
        raise SourceWriteError(f"image arrays must be uint8 or bool, got dtype {array.dtype}")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3):
        return Image.fromarray(array)
    raise SourceWriteError(
        f"image arrays must be [H, W], [H, W, 1] or [H, W, 3], got shape {array.shape}")


def _read_bytes(data_or_path):
    if isinstance(data_or_path, (bytes, bytearray, memoryview)):
        return bytes(data_or_path)
    with open(data_or_path, "rb") as f:
        return f.read()


def _process_and_save(img, crop, invert, output_format, quality=None):
    """RGB, then crop, then invert, then save: the official order."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    if crop is not None:
        img = img.crop(tuple(crop))
    if invert:
        img = ImageOps.invert(img)
    buf = io.BytesIO()
    if quality is None:
        img.save(buf, format=output_format)
    else:
        img.save(buf, format=output_format, quality=int(quality))
    return buf.getvalue()


def encode_image_file(data_or_path, crop=None, invert=False, output_format="JPEG") -> bytes:
    """The record bytes of one image file (encoded bytes or a path), by the official rule.

    Args:
      data_or_path: the file's bytes, or a path to it.
      crop: optional PIL box (left, upper, right, lower), applied after the RGB conversion.
      invert: colour-invert after cropping.
      output_format: the PIL format stored in the records.
    """
    return _encode_file(_read_bytes(data_or_path), crop, invert, output_format)


def _encode_file(raw, crop, invert, output_format, quality=None):
    img = Image.open(io.BytesIO(raw))
    if img.format == output_format and img.mode == "RGB" and crop is None and not invert:
        return raw
    return _process_and_save(img, crop, invert, output_format, quality)


def encode_bitmap_row(row) -> bytes:
    """JPEG bytes of one flattened square single-channel image (a row of an ``.npy`` class)."""
    row = np.asarray(row)
    if row.dtype == np.bool_:
        row = row.astype(np.uint8) * np.uint8(255)
    side = int(np.sqrt(row.shape[0]))
    if row.ndim != 1 or side * side != row.shape[0]:
        raise SourceWriteError(f"a bitmap row must be a flat square image, got shape {row.shape}")
    return _process_and_save(Image.fromarray(row.reshape(side, side)), None, False, "JPEG")


def encode_jpeg(image, quality: int = DEFAULT_JPEG_QUALITY, invert: bool = False,
                crop=None) -> bytes:
    """JPEG bytes of ``image`` under the official file rule (see :func:`encode_image_file`).

    Args:
      image: encoded image bytes, a path to an image file, a PIL image, or a uint8/bool array
        ([H, W], [H, W, 1] or [H, W, 3]; bool arrays map True to 255).
      quality: JPEG quality used when the image has to be (re-)encoded (Pillow default 75).
      invert: colour-invert the RGB image (``PIL.ImageOps.invert``) before encoding.
      crop: optional (left, upper, right, lower) box applied before inversion.
    """
    if isinstance(image, (str, os.PathLike, bytes, bytearray, memoryview)):
        return _encode_file(_read_bytes(image), crop, invert, "JPEG", quality)
    pil = image if isinstance(image, Image.Image) else array_to_pil(image)
    return _process_and_save(pil, crop, invert, "JPEG", quality)
