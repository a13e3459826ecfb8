"""COCO 2017 in miniature (`write`): train2017/ images and instances_train2017.json with the
real 80 categories (`CATEGORIES`) and the boxes of `ANNOTATIONS`."""

import json

from tests.data.sources.raw_trees import image_bytes

# The categories of COCO 2017's instances_train2017.json, in the file's order, with their ids.
REAL_CATEGORIES = list(enumerate(
    ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
     "traffic light", "fire hydrant", None, "stop sign", "parking meter", "bench", "bird", "cat",
     "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", None, "backpack",
     "umbrella", None, None, "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard",
     "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
     "tennis racket", "bottle", None, "wine glass", "cup", "fork", "knife", "spoon", "bowl",
     "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut",
     "cake", "chair", "couch", "potted plant", "bed", None, "dining table", None, None,
     "toilet", None, "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave",
     "oven", "toaster", "sink", "refrigerator", None, "book", "clock", "vase", "scissors",
     "teddy bear", "hair drier", "toothbrush"], start=1))


CATEGORIES = [{"supercategory": "thing", "id": i, "name": n}
              for i, n in REAL_CATEGORIES if n is not None]


IDS = {c["name"]: c["id"] for c in CATEGORIES}


# (image_id, category, bbox); image 3 has no file. The images' annotated width / height
# (640 x 480) differ from the files' (20 x 16, 10 x 10): the crops must use the files'.
ANNOTATIONS = [
    (1, "person", [2, 3, 10, 5]),
    (1, "dog", [15, 10, 8, 8]),            # clipped to the 20 x 16 image
    (2, "person", [30, 2, 4, 4]),          # outside the 10 x 10 image: empty, left out
    (3, "dog", [1, 1, 4, 4]),              # the image cannot be opened: left out
    (2, "bicycle", [0.0, 0.0, 0.5, 0.5]),
    (2, "person", [1.25, 2.75, 3.5, 2.5]),
]


def write(root, annotations_dir=""):
    """train2017/ (images 1 and 2; image 3 has no file) and instances_train2017.json in
    `root/annotations_dir`."""
    (root / "train2017").mkdir()
    for image_id, size in ((1, (20, 16)), (2, (10, 10))):
        (root / "train2017" / f"{image_id:012d}.jpg").write_bytes(image_bytes(size, (200, 30, 60)))
    content = {
        "images": [{"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480}
                   for i in (1, 2, 3)],
        "annotations": [{"id": k, "image_id": i, "category_id": IDS[c], "bbox": b}
                        for k, (i, c, b) in enumerate(ANNOTATIONS)],
        "categories": CATEGORIES,
    }
    folder = root / annotations_dir
    folder.mkdir(exist_ok=True)
    (folder / "instances_train2017.json").write_text(json.dumps(content))
    return root
