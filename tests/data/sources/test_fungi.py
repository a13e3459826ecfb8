"""fungi: the real labels, class ids and image order (the seeded split: test_splits.py)."""

import json
import pickle

import pytest

from ctx_tf.data.sources import fungi
from tests.data.sources.raw_trees import official
from tests.data.sources.raw_trees import fungi as fungi_tree


def test_labels_of_the_real_categories_are_sorted_and_complete():
    # (Their split: tests/data/sources/test_splits.py.)
    categories = fungi_tree.real_categories()
    labels = fungi.labels({"categories": categories}, {"categories": categories})
    assert labels == sorted(labels) and len(labels) == 1394


def test_plan_ids_names_counts_and_image_order_equal_the_official_rules(tmp_path):
    spec = official("fungi_dataset_spec.json")
    raw = fungi_tree.write(tmp_path, fungi_tree.real_categories())
    plan = fungi.plan(str(raw))
    assert plan.name == "fungi" and plan.spec_type == "flat"
    assert dict(plan.classes_per_split) == spec["classes_per_split"]
    assert [c.name for c in plan.classes] == [
        spec["class_names"][str(i)] for i in range(len(spec["class_names"]))]
    assert [c.num_images for c in plan.classes] == [3] * 1394
    first = plan.classes[0]
    category = int(first.name[:4])
    name = first.name[5:]
    # train.json's images first, then val.json's, each in file order; nothing cropped.
    expected = [str(raw / f"images/{name}/{p}_{category}_{j}.JPG")
                for p, j in (("train", 0), ("train", 1), ("val", 0))]
    refs = list(first.images())
    assert [r.path for r in refs] == expected
    assert all(r.crop is None and not r.invert and r.row is None for r in refs)
    assert plan.skipped == ()
    pickle.loads(pickle.dumps(plan))


def test_missing_annotation_file_names_the_path(tmp_path):
    fungi_tree.write(tmp_path, fungi_tree.real_categories(), with_files=1)
    (tmp_path / "val.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"val\.json is missing"):
        fungi.plan(str(tmp_path))


def test_missing_images_folder_names_it(tmp_path):
    categories = [{"id": i, "name": f"Species {i}"} for i in range(1394)]
    fungi_tree.write(tmp_path, categories, with_files=0)
    with pytest.raises(FileNotFoundError, match=r"images is missing"):
        fungi.plan(str(tmp_path))


def test_official_consistency_checks(tmp_path):
    categories = [{"id": i, "name": f"Species {i}"} for i in range(1394)]
    raw = fungi_tree.write(tmp_path, categories, with_files=1)
    val = json.loads((raw / "val.json").read_text())
    val["categories"] = val["categories"][:-1]
    (raw / "val.json").write_text(json.dumps(val))
    with pytest.raises(ValueError, match="categories differ"):
        fungi.plan(str(raw))
    gap = [{"id": i + (i > 5), "name": f"S{i}"} for i in range(1394)]
    with pytest.raises(ValueError, match="must run 0..1393"):
        fungi.labels({"categories": gap}, {"categories": gap})


def test_category_without_images_is_an_error(tmp_path):
    categories = [{"id": i, "name": f"Species {i}"} for i in range(1394)]
    raw = fungi_tree.write(tmp_path, categories, with_files=1)
    for part in ("train", "val"):
        content = json.loads((raw / f"{part}.json").read_text())
        dropped = {a["image_id"] for a in content["annotations"] if a["category_id"] == 7}
        content["annotations"] = [a for a in content["annotations"]
                                  if a["image_id"] not in dropped]
        content["images"] = [i for i in content["images"] if i["id"] not in dropped]
        (raw / f"{part}.json").write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r"no image of category 7 \(0007\.Species 7\)"):
        fungi.plan(str(raw))
