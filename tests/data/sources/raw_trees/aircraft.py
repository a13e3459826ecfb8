"""fgvc-aircraft-2013b/data in miniature (`write`): the variant list, the trainval / test
variant lists, the boxes and the images (`images` draws two per variant)."""

import random

from tests.data.sources.raw_trees import tiny_jpeg


def write(root, names, images):
    """fgvc-aircraft-2013b/data with `images`: [(id, variant, part, box)]."""
    data = root / "data"
    (data / "images").mkdir(parents=True)
    shuffled = list(names)
    random.Random(0).shuffle(shuffled)
    (data / "variants.txt").write_text("".join(f"{n}\n" for n in shuffled))
    for part in ("trainval", "test"):
        (data / f"images_variant_{part}.txt").write_text(
            "".join(f"{i} {v}\n" for i, v, p, _ in images if p == part))
    (data / "images_box.txt").write_text(
        "".join(f"{i} {' '.join(map(str, box))}\n" for i, _, _, box in images))
    jpeg = tiny_jpeg()
    for image_id, *_ in images:
        (data / "images" / f"{image_id}.jpg").write_bytes(jpeg)
    return root


def images(names):
    """[(image id, variant, part, box)]: two images per variant."""
    # Two images per variant, ids listed out of order; the box varies with the id.
    images = []
    for k, name in enumerate(names):
        for j, part in ((1, "test"), (0, "trainval")):
            image_id = f"{k:03d}{j}"
            images.append((image_id, name, part, (k % 7 + 1, j + 1, k % 7 + 5, j + 4)))
    return images
