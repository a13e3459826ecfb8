"""mscoco: class ids of the real 80 categories and the box crops (the split: test_splits.py)."""

import json
import os
import pickle
import zipfile

import pytest
from PIL import Image

from ctx_tf.data.sources import mscoco
from ctx_tf.data.writing import engine
from ctx_tf.data.writing.errors import SourceConversionError
from tests.data.sources.raw_trees import official
from tests.data.sources.raw_trees import mscoco as mscoco_tree


def test_plan_ids_names_and_crops_follow_the_official_rules(tmp_path):
    spec = official("mscoco_dataset_spec.json")
    raw = mscoco_tree.write(tmp_path)
    plan = mscoco.plan(str(raw))
    assert dict(plan.classes_per_split) == spec["classes_per_split"]
    names = [c.name for c in plan.classes]
    assert names == [spec["class_names"][str(i)] for i in range(80)]
    image = {i: str(raw / "train2017" / f"{i:012d}.jpg") for i in (1, 2, 3)}
    refs = {name: list(plan.classes[names.index(name)].images())
            for name in ("person", "dog", "bicycle")}
    assert [(r.path, r.bbox) for r in refs["person"]] == [
        (image[1], (2, 3, 10, 5)), (image[2], (30, 2, 4, 4)), (image[2], (1.25, 2.75, 3.5, 2.5))]
    assert [(r.path, r.bbox) for r in refs["dog"]] == [(image[1], (15, 10, 8, 8)),
                                                       (image[3], (1, 1, 4, 4))]

    def crops(items):  # boxes by the official arithmetic with the files' sizes
        return [(r.path, mscoco.crop_box(r.bbox, Image.open(r.path).size)) for r in items]

    assert crops(refs["person"]) == [
        (image[1], (1, 2, 13, 9)), (image[2], None), (image[2], (0, 2, 6, 6))]
    assert crops(refs["dog"][:1]) == [(image[1], (14, 9, 20, 16))]
    assert crops(refs["bicycle"]) == [(image[2], (0, 0, 1, 1))]
    assert {c.name: c.num_images for c in plan.classes if c.num_images} == {
        "person": 3, "dog": 2, "bicycle": 1}
    assert list(plan.classes[names.index("cat")].images()) == []
    pickle.loads(pickle.dumps(plan))


def test_crop_box_scale_ratio_and_empty_boxes():
    # Unscaled: round(2.5) == 2 and round(7.5) == 8 (half to even), then the +1 corner.
    assert mscoco.crop_box([2, 3, 10, 5], (20, 16), box_scale_ratio=1.0) == (2, 2, 13, 9)
    assert mscoco.crop_box([30, 2, 4, 4], (10, 10)) is None
    assert mscoco.crop_box([2, 30, 4, 4], (10, 10)) is None


def test_annotations_subfolder_is_read_too(tmp_path):
    plan = mscoco.plan(str(mscoco_tree.write(tmp_path, annotations_dir="annotations")))
    assert len(plan.classes) == 80


def test_missing_annotations_or_images_name_the_path(tmp_path):
    raw = mscoco_tree.write(tmp_path)
    (raw / "instances_train2017.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"instances_train2017\.json is missing"):
        mscoco.plan(str(raw))
    with pytest.raises(FileNotFoundError, match=r"train2017 is missing"):
        mscoco.plan(str(tmp_path / "elsewhere"))


def test_wrong_category_count_or_ratio_is_an_error(tmp_path):
    raw = mscoco_tree.write(tmp_path)
    path = raw / "instances_train2017.json"
    content = json.loads(path.read_text())
    content["categories"] = content["categories"][:79]
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match="holds 79 categories"):
        mscoco.plan(str(raw))
    with pytest.raises(ValueError, match="box_scale_ratio"):
        mscoco.plan(str(raw), box_scale_ratio=0.9)


def _zipped(raw, out):
    """`out` holding the downloads train2017.zip and annotations_trainval2017.zip of `raw`
    (a tree with annotations/), as cocodataset.org serves them."""
    out.mkdir()
    with zipfile.ZipFile(out / "train2017.zip", "w") as z:
        z.writestr("train2017/", b"")
        for path in sorted((raw / "train2017").iterdir()):
            z.write(path, f"train2017/{path.name}")
    with zipfile.ZipFile(out / "annotations_trainval2017.zip", "w",
                         compression=zipfile.ZIP_DEFLATED) as z:
        z.write(raw / "annotations" / "instances_train2017.json",
                "annotations/instances_train2017.json")
        z.writestr("annotations/instances_val2017.json", "{}")
    return out


def test_the_downloaded_zips_read_in_place_give_the_folders_records(tmp_path):
    (tmp_path / "folders").mkdir()
    raw = mscoco_tree.write(tmp_path / "folders", annotations_dir="annotations")
    zips = _zipped(raw, tmp_path / "zips")
    folders, zipped = mscoco.plan(str(raw)), mscoco.plan(str(zips))
    assert [(c.name, c.num_images) for c in zipped.classes] == [
        (c.name, c.num_images) for c in folders.classes]
    person = [c.name for c in zipped.classes].index("person")
    assert [r.where for r in zipped.classes[person].images()][:1] == [
        f"{zips / 'train2017.zip'}:train2017/000000000001.jpg box [2, 3, 10, 5]"]
    pickle.loads(pickle.dumps(zipped))
    assert mscoco.describe_raw(str(zips)) == (
        f"MSCOCO 2017 train images from {zips / 'train2017.zip'} (in place), annotations from "
        f"{zips / 'annotations_trainval2017.zip'}:annotations/instances_train2017.json "
        "(in place)")
    ids = [c.name for c in zipped.classes].index
    ids = [ids("person"), ids("dog"), ids("bicycle")]  # the classes with boxes
    reports = [engine.convert(plan, tmp_path / name, workers=1, class_ids=ids,
                              log=lambda _: None)
               for plan, name in ((folders, "a"), (zipped, "b"))]
    assert [len(r.unreadable) for r in reports] == [1, 1]  # image 3 has no file in either
    assert reports[1].unreadable[0][0] == (
        f"{zips / 'train2017.zip'}:train2017/000000000003.jpg box [1, 1, 4, 4]")
    assert [len(r.skipped) for r in reports] == [1, 1]  # the empty box
    for class_id in ids:
        name = f"{class_id}.tfrecords"
        assert (tmp_path / "a" / "mscoco" / name).read_bytes() == (
            tmp_path / "b" / "mscoco" / name).read_bytes(), name


def test_zips_that_are_not_the_coco_downloads_are_named(tmp_path):
    (tmp_path / "folders").mkdir()
    raw = mscoco_tree.write(tmp_path / "folders", annotations_dir="annotations")
    zips = _zipped(raw, tmp_path / "zips")
    images = zips / "train2017.zip"
    os.rename(images, tmp_path / "kept.zip")
    with zipfile.ZipFile(images, "w") as z:
        z.writestr("val2017/000000000001.jpg", b"")
    with pytest.raises(SourceConversionError, match=f"^{images}: holds no train2017/"):
        mscoco.plan(str(zips))
    images.write_text("not a zip")
    with pytest.raises(SourceConversionError, match=f"^{images}: not a readable zip file"):
        mscoco.plan(str(zips))
    os.rename(tmp_path / "kept.zip", images)
    annotations = zips / "annotations_trainval2017.zip"
    with zipfile.ZipFile(annotations, "w") as z:
        z.writestr("annotations/captions_train2017.json", "{}")
    with pytest.raises(SourceConversionError,
                       match=f"^{annotations}: holds no annotations/instances_train2017.json"):
        mscoco.plan(str(zips))
    annotations.unlink()
    with pytest.raises(FileNotFoundError, match="also looked for in annotations/ and in "
                                                "annotations_trainval2017.zip"):
        mscoco.plan(str(zips))
