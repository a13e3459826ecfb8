"""The built-in demo source: procedurally drawn glyph classes, no downloads.

Every class is a glyph of a few random strokes (quadratic Bezier curves); every image of the
class redraws the glyph under a random affine deformation (rotation, scale, shear,
translation), a random stroke thickness and brightness, and pixel noise. TRAIN, VALID and
TEST classes are disjoint, so a learner has to transfer to glyphs it never saw, and the
deformations make nearest-centroid on raw pixels a weak baseline.

The source is written in the official layout (`<records_root>/demo_glyphs/<class>.tfrecords`
+ `dataset_spec.json`) by `ctx_tf.data.writing.arrays`, deterministically from a seed, into a cache
directory (`$CTX_TF_CACHE/demo`, default `~/.cache/ctx_tf/demo`) and reused while its
parameters are unchanged. The folder appears atomically: it is generated next to its final
place and renamed, with a `demo_params.json` marker written last.
"""

import json
import os
import shutil
import tempfile

import numpy as np
from PIL import Image, ImageDraw

from ctx_tf.data.writing.arrays import write_source_from_arrays

DEMO_SOURCE_NAME = "demo_glyphs"
MARKER = "demo_params.json"
# Bump when the drawing changes, so stale caches are regenerated.
FORMAT_VERSION = 1

DEFAULT_PARAMS = dict(
    num_train_classes=64,
    num_valid_classes=16,
    num_test_classes=24,
    images_per_class=30,
    image_size=32,
    strokes_per_class=3,
    seed=0,
)


def default_cache_dir():
    """`$CTX_TF_CACHE/demo`, or `~/.cache/ctx_tf/demo`."""
    root = os.environ.get("CTX_TF_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "ctx_tf")
    return os.path.join(root, "demo")


def _glyph(rng, num_strokes):
    """Control points of `num_strokes` quadratic Bezier strokes in [0.15, 0.85]^2."""
    return rng.uniform(0.15, 0.85, size=(num_strokes, 3, 2))


def _draw(glyph, rng, size, supersample=4):
    """One deformed rendering of a glyph: uint8 [size, size]."""
    big = size * supersample
    angle = rng.uniform(-0.35, 0.35)
    scale = rng.uniform(0.75, 1.1, size=2)
    shear = rng.uniform(-0.25, 0.25)
    shift = rng.uniform(-0.12, 0.12, size=2)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = rotation @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag(scale)
    # Each control point also moves a little on its own: glyphs are hand-drawn, not stamped.
    points = glyph + rng.normal(0, 0.03, size=glyph.shape)
    points = (points - 0.5) @ matrix.T + 0.5 + shift
    width = max(1, int(round(rng.uniform(0.05, 0.11) * big)))
    brightness = int(rng.uniform(150, 255))
    image = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(image)
    t = np.linspace(0.0, 1.0, 24)[:, None]
    for p0, p1, p2 in points:
        curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2
        draw.line([tuple(xy) for xy in curve * big], fill=brightness, width=width, joint="curve")
    image = np.asarray(image.resize((size, size), Image.LANCZOS), np.float64)
    image += rng.normal(0, 12.0, size=image.shape) + rng.uniform(0, 40)
    return np.clip(image, 0, 255).astype(np.uint8)


def generate_images(num_classes, images_per_class, image_size, strokes_per_class, seed):
    """uint8 images `[num_classes][images_per_class, size, size]`, deterministic from seed."""
    rng = np.random.RandomState(seed)
    glyphs = [_glyph(rng, strokes_per_class) for _ in range(num_classes)]
    return [np.stack([_draw(g, rng, image_size) for _ in range(images_per_class)])
            for g in glyphs]


def _params(**overrides):
    params = dict(DEFAULT_PARAMS)
    unknown = set(overrides) - set(params)
    if unknown:
        raise ValueError(f"unknown demo parameters {sorted(unknown)}; known: {sorted(params)}")
    params.update(overrides)
    params["format_version"] = FORMAT_VERSION
    return params


def _cached(directory, params):
    marker = os.path.join(directory, DEMO_SOURCE_NAME, MARKER)
    try:
        with open(marker) as f:
            return json.load(f) == params
    except (OSError, ValueError):
        return False


def ensure_demo_source(cache_dir=None, print_fn=print, **overrides):
    """Generates the demo source unless cached; returns the records root to train on.

    The records root holds one source, `demo_glyphs`. Keyword overrides change
    `DEFAULT_PARAMS` (class counts per split, images per class, image size, seed).
    """
    cache_dir = os.path.abspath(cache_dir or default_cache_dir())
    params = _params(**overrides)
    if _cached(cache_dir, params):
        print_fn(f"Using the cached demo source in {os.path.join(cache_dir, DEMO_SOURCE_NAME)}")
        return cache_dir
    try:
        os.makedirs(cache_dir, exist_ok=True)
    except OSError as e:
        raise OSError(f"cannot create the demo cache directory {cache_dir}: {e} "
                      "(set CTX_TF_CACHE to a writable directory)") from e
    final = os.path.join(cache_dir, DEMO_SOURCE_NAME)
    print_fn(f"Generating the demo source (procedural glyphs) into {final} ...")
    counts = (params["num_train_classes"], params["num_valid_classes"],
              params["num_test_classes"])
    images = generate_images(sum(counts), params["images_per_class"], params["image_size"],
                             params["strokes_per_class"], params["seed"])
    staging = tempfile.mkdtemp(prefix=".demo_staging_", dir=cache_dir)
    try:
        report = write_source_from_arrays(
            staging, DEMO_SOURCE_NAME, images,
            class_names=[f"glyph_{i:03d}" for i in range(len(images))],
            splits=counts, spec_path=final)
        with open(os.path.join(staging, DEMO_SOURCE_NAME, MARKER), "w") as f:
            json.dump(params, f, indent=2, sort_keys=True)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(os.path.join(staging, DEMO_SOURCE_NAME), final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for line in report.summary().splitlines():
        print_fn(line.replace(os.path.join(staging, DEMO_SOURCE_NAME), final))
    return cache_dir
