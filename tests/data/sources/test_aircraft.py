"""aircraft: class ids, image order and bounding-box crops (the split: test_splits.py)."""

import pickle

import pytest

from ctx_tf.data.sources import aircraft
from tests.data.sources.raw_trees import official, official_class_names
from tests.data.sources.raw_trees import aircraft as aircraft_tree


def test_plan_reproduces_the_official_spec_and_crops(tmp_path):
    spec = official("aircraft_dataset_spec.json")
    names = official_class_names("aircraft")
    images = aircraft_tree.images(names)
    raw = aircraft_tree.write(tmp_path / "fgvc-aircraft-2013b", names, images)
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
    images = aircraft_tree.images(names)
    images.append(("0000", names[5], "test", (1, 1, 2, 2)))  # 0000 was names[0]'s
    raw = aircraft_tree.write(tmp_path, names, images)
    by_name = {c.name: [r.path.rsplit("/", 1)[1] for r in c.images()]
               for c in aircraft.plan(str(raw)).classes}
    assert by_name[names[0]] == ["0001.jpg"]
    assert by_name[names[5]] == ["0000.jpg", "0050.jpg", "0051.jpg"]


def test_missing_box_file_names_the_path(tmp_path):
    names = [f"V{i:03d}" for i in range(100)]
    raw = aircraft_tree.write(tmp_path, names, aircraft_tree.images(names))
    (raw / "data" / "images_box.txt").unlink()
    with pytest.raises(FileNotFoundError, match="images_box.txt"):
        aircraft.plan(str(raw))


def test_variant_without_images_is_an_error(tmp_path):
    names = [f"V{i:03d}" for i in range(100)]
    raw = aircraft_tree.write(tmp_path, names, aircraft_tree.images(names[:-1]))
    with pytest.raises(ValueError, match="V099"):
        aircraft.plan(str(raw))
