"""fungi in miniature (`write`): train.json / val.json of the real categories
(`real_categories`) and the images of the first ones."""

import json
import random

from tests.data.sources.raw_trees import image_bytes, official


def real_categories():
    """The 1394 real categories, rebuilt from the official split's `"{id:04d}.{name}"` labels."""
    labels = [l for part in official("fungi_splits.json").values() for l in part]
    categories = [{"id": int(l[:4]), "name": l[5:], "supercategory": "Fungi"} for l in labels]
    random.Random(1).shuffle(categories)  # the download's order must not matter
    return categories


def write(root, categories, with_files=3):
    """train.json / val.json with two train images and one val image per category; the images
    of the first `with_files` categories exist on disk."""
    parts = {"train": {"images": [], "annotations": [], "categories": categories},
             "val": {"images": [], "annotations": [], "categories": categories}}
    image_id = 0
    for k, category in enumerate(sorted(categories, key=lambda c: c["id"])):
        for part, n in (("val", 1), ("train", 2)):
            for j in range(n):
                file_name = f"images/{category['name']}/{part}_{category['id']}_{j}.JPG"
                parts[part]["images"].append({"id": image_id, "file_name": file_name})
                parts[part]["annotations"].append(
                    {"id": image_id, "image_id": image_id, "category_id": category["id"]})
                if k < with_files:
                    path = root / file_name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(image_bytes((6, 5), (10 * j, 80, 120)))
                image_id += 1
    for part, content in parts.items():
        (root / f"{part}.json").write_text(json.dumps(content))
    return root
