"""aircraft: the official variant split, class ids, image order and bounding-box crops."""

import io
import json
import pickle
import random

import pytest
from PIL import Image

from ctx_tf.data.sources import aircraft
from tests.conftest import shared_path


def _official(filename):
    with open(shared_path("meta_dataset_specs", filename)) as f:
        return json.load(f)


def _jpeg():
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (10, 200, 30)).save(buf, format="JPEG")
    return buf.getvalue()


def _raw_tree(root, names, images):
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
    jpeg = _jpeg()
    for image_id, *_ in images:
        (data / "images" / f"{image_id}.jpg").write_bytes(jpeg)
    return root


def _images(names):
    # Two images per variant, ids listed out of order; the box varies with the id.
    images = []
    for k, name in enumerate(names):
        for j, part in ((1, "test"), (0, "trainval")):
            image_id = f"{k:03d}{j}"
            images.append((image_id, name, part, (k % 7 + 1, j + 1, k % 7 + 5, j + 4)))
    return images


def test_split_of_real_variants_is_the_official_split():
    official = _official("aircraft_splits.json")
    names = official["train"] + official["valid"] + official["test"]
    assert aircraft.split_variants(sorted(names, reverse=True)) == official


def test_plan_reproduces_the_official_spec_and_crops(tmp_path):
    spec = _official("aircraft_dataset_spec.json")
    names = [spec["class_names"][str(i)] for i in range(100)]
    images = _images(names)
    raw = _raw_tree(tmp_path / "fgvc-aircraft-2013b", names, images)
    plan = aircraft.plan(str(raw))
    assert [c.name for c in plan.classes] == names
    assert dict(plan.classes_per_split) == spec["classes_per_split"]
    assert plan.spec_type == "flat" and plan.skipped == ()
    expected = {}
    for image_id, name, _, box in images:
        expected.setdefault(name, []).append((image_id, box))
    for cls in pickle.loads(pickle.dumps(plan)).classes:
        refs = list(cls.images())
        want = sorted(expected[cls.name])
        assert cls.num_images == len(refs) == 2
        assert [r.path for r in refs] == [
            str(raw / "data" / "images" / f"{i}.jpg") for i, _ in want]
        assert [r.crop for r in refs] == [box for _, box in want]
        assert not any(r.invert or r.row is not None for r in refs)


def test_a_test_line_overrides_a_trainval_line_for_the_same_image(tmp_path):
    names = [f"V{i:03d}" for i in range(100)]
    images = _images(names)
    images.append(("0000", names[5], "test", (1, 1, 2, 2)))  # 0000 was names[0]'s
    raw = _raw_tree(tmp_path, names, images)
    by_name = {c.name: [r.path.rsplit("/", 1)[1] for r in c.images()]
               for c in aircraft.plan(str(raw)).classes}
    assert by_name[names[0]] == ["0001.jpg"]
    assert by_name[names[5]] == ["0000.jpg", "0050.jpg", "0051.jpg"]


def test_missing_box_file_names_the_path(tmp_path):
    names = [f"V{i:03d}" for i in range(100)]
    raw = _raw_tree(tmp_path, names, _images(names))
    (raw / "data" / "images_box.txt").unlink()
    with pytest.raises(FileNotFoundError, match="images_box.txt"):
        aircraft.plan(str(raw))


def test_variant_without_images_is_an_error(tmp_path):
    names = [f"V{i:03d}" for i in range(100)]
    raw = _raw_tree(tmp_path, names, _images(names[:-1]))
    with pytest.raises(ValueError, match="V099"):
        aircraft.plan(str(raw))
