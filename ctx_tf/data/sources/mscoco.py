"""MSCOCO 2017 train: 80 categories, one record per instance box, cropped from its image.

Official rules (MSCOCOConverter): the 80 categories of `instances_train2017.json`, in the file's
order, are split 0 / 40 / 40 by the seeded draw. Each instance annotation, in file order,
becomes one record of its category: `train2017/<image_id:012d>.jpg` cropped to its box
`[x, y, w, h]` grown about its centre by `box_scale_ratio` (1.2), turned into PIL's
full-integer box `(max(round(x - .5), 0), max(round(y - .5), 0), min(round(x + w - .5) + 1,
W), min(round(y + h - .5) + 1, H))` with the image's own size W x H (the official code opens
the image for it, not the annotation's `width` / `height`); an annotation whose box is empty
after clipping is left out (`LeftOut`, counted in the report), and one whose image cannot be
opened is an unreadable image (skipped and named, as the official converter skips it; refused
with --strict).
"""

import collections
import dataclasses
import functools
import io
import json
import os

from PIL import Image

from ctx_tf.data import image_encoding
from ctx_tf.data.sources import common
from ctx_tf.data.sources.plan import ClassPlan, LeftOut

NAME = "mscoco"
RAW_EXPECTS = ("--raw_dir: the folder holding COCO 2017's train2017/ images and "
               "instances_train2017.json (in the folder itself, as the official converter "
               "reads it, or in its annotations/ subfolder)")
NUM_TRAIN, NUM_VALID, NUM_TEST = 0, 40, 40
BOX_SCALE_RATIO = 1.2
_ANNOTATIONS = "instances_train2017.json"


def annotation_path(raw_dir):
    """instances_train2017.json in `raw_dir` (the official place) or in `raw_dir`/annotations."""
    for path in (os.path.join(raw_dir, _ANNOTATIONS),
                 os.path.join(raw_dir, "annotations", _ANNOTATIONS)):
        if os.path.exists(path):
            return path
    return common.require(os.path.join(raw_dir, _ANNOTATIONS),
                          "the COCO 2017 train instance annotations (also looked for in "
                          "annotations/)")


def split_categories(category_names):
    """The official seeded split of the category names in the annotation file's order."""
    return common.seeded_class_split(list(category_names), NUM_TRAIN, NUM_VALID, NUM_TEST)


def crop_box(bbox, image_size, box_scale_ratio=BOX_SCALE_RATIO):
    """The official PIL crop box of COCO box `bbox` in an image of `image_size` (W, H), or None
    when the clipped box is empty (the official converter skips that annotation)."""
    x, y, w, h = bbox
    x = x - 0.5 * w * (box_scale_ratio - 1.0)
    y = y - 0.5 * h * (box_scale_ratio - 1.0)
    w = w * box_scale_ratio
    h = h * box_scale_ratio
    image_w, image_h = image_size
    # COCO boxes use half-integer pixel centres, PIL crop boxes full-integer corners.
    xmin = max(int(round(x - 0.5)), 0)
    ymin = max(int(round(y - 0.5)), 0)
    xmax = min(int(round(x + w - 0.5)) + 1, image_w)
    ymax = min(int(round(y + h - 0.5)) + 1, image_h)
    if xmax <= xmin or ymax <= ymin:
        return None
    return (xmin, ymin, xmax, ymax)


def image_path(image_dir, image_id):
    return os.path.join(image_dir, "%012d.jpg" % image_id)


@dataclasses.dataclass(frozen=True)
class BoxCrop:
    """One instance box of an image (a `plan` item); its crop box needs the image's size."""

    path: str
    bbox: tuple
    box_scale_ratio: float = BOX_SCALE_RATIO

    @property
    def where(self):
        return f"{self.path} box {list(self.bbox)}"

    def encode(self) -> bytes:
        with open(self.path, "rb") as f:
            data = f.read()
        with Image.open(io.BytesIO(data)) as image:  # the header gives the size
            box = crop_box(self.bbox, image.size, self.box_scale_ratio)
        if box is None:
            raise LeftOut("box empty once clipped to the image (the official converter "
                          "leaves it out)")
        return image_encoding.encode_image_file(data, crop=box)


def _crops(image_dir, boxes, box_scale_ratio):
    """The records of one category: `boxes` is ((image_id, bbox), ...) in annotation order."""
    for image_id, bbox in boxes:
        yield BoxCrop(image_path(image_dir, image_id), bbox, box_scale_ratio)


def plan(raw_dir, name=NAME, box_scale_ratio=BOX_SCALE_RATIO):
    """The official MSCOCO classes, splits and box crops of `raw_dir`.

    Image sizes are read from the image headers when a box is cropped (in the worker), so
    empty boxes are only known then; `ClassPlan.num_images` counts the boxes.
    """
    if box_scale_ratio < 1.0:
        raise ValueError(f"box_scale_ratio must be at least 1.0, got {box_scale_ratio}")
    image_dir = common.require(os.path.join(raw_dir, "train2017"),
                               "the COCO 2017 train images <image_id:012d>.jpg")
    path = annotation_path(raw_dir)
    with open(path, encoding="utf-8") as f:
        content = json.load(f)
    annotations, categories = content.get("annotations"), content.get("categories", [])
    if not annotations:
        raise ValueError(f"{path} holds no instance annotations")
    if len(categories) != NUM_TRAIN + NUM_VALID + NUM_TEST:
        raise ValueError(f"{path} holds {len(categories)} categories; MSCOCO has "
                         f"{NUM_TRAIN + NUM_VALID + NUM_TEST}")
    splits = split_categories(c["name"] for c in categories)
    names = common.classes_in_id_order(splits)
    class_of = {c["id"]: names.index(c["name"]) for c in categories}
    boxes = collections.defaultdict(list)
    for annotation in annotations:
        boxes[class_of[annotation["category_id"]]].append(
            (annotation["image_id"], tuple(annotation["bbox"])))
    classes = [ClassPlan(name=class_name,
                         images=functools.partial(_crops, image_dir, tuple(boxes[i]),
                                                  box_scale_ratio),
                         num_images=len(boxes[i]))
               for i, class_name in enumerate(names)]
    return common.flat_plan(name, splits, classes)
