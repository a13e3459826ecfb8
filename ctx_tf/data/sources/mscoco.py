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

Raw forms: the images as the `train2017/` folder or the download `train2017.zip` (members
`train2017/<image_id:012d>.jpg`), the annotations as `instances_train2017.json` in `raw_dir` (the
official place), in `raw_dir/annotations/` (where the annotations zip unpacks) or inside the
download `annotations_trainval2017.zip`; zips are read in place (`archives`), a folder is
preferred to a zip when both are there. The records are the same for every form.
"""

import collections
import dataclasses
import functools
import io
import json
import os
from typing import Optional

from PIL import Image

from ctx_tf.data.sources import common
from ctx_tf.data.writing import archives
from ctx_tf.data.writing import image_encoding
from ctx_tf.data.writing.plan import ClassPlan, LeftOut

NAME = "mscoco"
RAW_EXPECTS = ("--raw_dir: the folder holding COCO 2017's train images (train2017/, or "
               "train2017.zip read in place) and instances_train2017.json (in the folder "
               "itself, as the official converter reads it, in its annotations/ subfolder, or "
               "inside annotations_trainval2017.zip read in place)")
NUM_TRAIN, NUM_VALID, NUM_TEST = 0, 40, 40
BOX_SCALE_RATIO = 1.2
_ANNOTATIONS = "instances_train2017.json"
_ANNOTATIONS_ZIP = "annotations_trainval2017.zip"
_IMAGES = "train2017"


def _annotations_source(raw_dir):
    """(path, zip member or None) of instances_train2017.json: in `raw_dir` (the official
    place), in `raw_dir/annotations/`, or inside annotations_trainval2017.zip."""
    for path in (os.path.join(raw_dir, _ANNOTATIONS),
                 os.path.join(raw_dir, "annotations", _ANNOTATIONS)):
        if os.path.exists(path):
            return path, None
    zip_path = os.path.join(raw_dir, _ANNOTATIONS_ZIP)
    if os.path.exists(zip_path):
        member = f"annotations/{_ANNOTATIONS}"
        if member not in archives.zip_names(zip_path):
            raise common.SourceConversionError(
                f"{zip_path}: holds no {member}; expected the COCO 2017 annotations download")
        return zip_path, member
    raise common.MissingRawFileError(
        f"{os.path.join(raw_dir, _ANNOTATIONS)} is missing: it should hold the COCO 2017 train "
        f"instance annotations (also looked for in annotations/ and in {_ANNOTATIONS_ZIP})")


def _images_source(raw_dir):
    """(the train2017/ folder, None) or (train2017.zip, its member prefix "train2017/")."""
    folder = os.path.join(raw_dir, _IMAGES)
    zip_path = folder + ".zip"
    if os.path.isdir(folder) or not os.path.exists(zip_path):
        return common.require(folder, "the COCO 2017 train images <image_id:012d>.jpg (or "
                                      f"{_IMAGES}.zip holding them, read in place)"), None
    prefix = _IMAGES + "/"
    if not any(n.startswith(prefix) and not n.endswith("/")
               for n in archives.zip_names(zip_path)):
        raise common.SourceConversionError(
            f"{zip_path}: holds no {prefix}<image_id:012d>.jpg member; expected the COCO 2017 "
            "train images download")
    return zip_path, prefix


def _load_annotations(raw_dir):
    """(where, the parsed instances_train2017.json)."""
    path, member = _annotations_source(raw_dir)
    if member is None:
        with open(path, encoding="utf-8") as f:
            return path, json.load(f)
    with archives.open_zip(path).open(member) as f:
        return f"{path}:{member}", json.load(f)


def describe_raw(raw_dir):
    """One line naming where the images and the annotations are read from."""
    images, prefix = _images_source(raw_dir)
    path, member = _annotations_source(raw_dir)
    return (f"MSCOCO 2017 train images from {images}" + (" (in place)" if prefix else "")
            + f", annotations from {path}" + (f":{member} (in place)" if member else ""))


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
    """One instance box of an image (a `plan` item); its crop box needs the image's size.

    path: the image file, or the zip holding it as `member`.
    """

    path: str
    bbox: tuple
    box_scale_ratio: float = BOX_SCALE_RATIO
    member: Optional[str] = None

    @property
    def where(self):
        image = self.path if self.member is None else f"{self.path}:{self.member}"
        return f"{image} box {list(self.bbox)}"

    def encode(self) -> bytes:
        data = archives.read(self.path, self.member)
        with Image.open(io.BytesIO(data)) as image:  # the header gives the size
            box = crop_box(self.bbox, image.size, self.box_scale_ratio)
        if box is None:
            raise LeftOut("box empty once clipped to the image (the official converter "
                          "leaves it out)")
        return image_encoding.encode_image_file(data, crop=box)


def _crops(images, prefix, boxes, box_scale_ratio):
    """The records of one category: `boxes` is ((image_id, bbox), ...) in annotation order;
    `images` is the image folder, or the zip holding the images under `prefix`."""
    for image_id, bbox in boxes:
        if prefix is None:
            yield BoxCrop(image_path(images, image_id), bbox, box_scale_ratio)
        else:
            yield BoxCrop(images, bbox, box_scale_ratio,
                          member="%s%012d.jpg" % (prefix, image_id))


def plan(raw_dir, name=NAME, box_scale_ratio=BOX_SCALE_RATIO):
    """The official MSCOCO classes, splits and box crops of `raw_dir`.

    Image sizes are read from the image headers when a box is cropped (in the worker), so
    empty boxes are only known then; `ClassPlan.num_images` counts the boxes.
    """
    if box_scale_ratio < 1.0:
        raise ValueError(f"box_scale_ratio must be at least 1.0, got {box_scale_ratio}")
    images, prefix = _images_source(raw_dir)
    path, content = _load_annotations(raw_dir)
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
                         images=functools.partial(_crops, images, prefix, tuple(boxes[i]),
                                                  box_scale_ratio),
                         num_images=len(boxes[i]))
               for i, class_name in enumerate(names)]
    return common.flat_plan(name, splits, classes)
