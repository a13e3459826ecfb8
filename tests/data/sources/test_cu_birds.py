"""cu_birds: class ids and image order of the classes.txt names (the split: test_splits.py)."""

import pickle

import pytest

from ctx_tf.data.sources import cu_birds
from tests.data.sources.raw_trees import official, official_class_names
from tests.data.sources.raw_trees import cu_birds as cu_birds_tree


def test_plan_reproduces_the_official_spec(tmp_path):
    spec = official("cu_birds_dataset_spec.json")
    file_order = sorted(official_class_names("cu_birds"))  # "001.Black_footed_Albatross", ...
    raw = cu_birds_tree.write(tmp_path / "CUB_200_2011", file_order)
    subfolder = raw / "images" / file_order[0] / "extra"
    subfolder.mkdir()
    plan = pickle.loads(pickle.dumps(cu_birds.plan(str(raw))))
    assert [c.name for c in plan.classes] == official_class_names("cu_birds")
    assert dict(plan.classes_per_split) == spec["classes_per_split"]
    assert plan.skipped == ((str(subfolder), plan.skipped[0][1]),)
    for cls in plan.classes:
        k = file_order.index(cls.name)
        refs = list(cls.images())
        assert cls.num_images == len(refs) == k % 3 + 1
        assert [r.path for r in refs] == [
            str(raw / "images" / cls.name / f"{cls.name}_{j:04d}_{k}.jpg")
            for j in range(k % 3 + 1)]
        assert all(r.crop is None and not r.invert and r.row is None for r in refs)


def test_missing_classes_txt_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"classes\.txt"):
        cu_birds.plan(str(tmp_path))


def test_missing_class_folder_names_the_path(tmp_path):
    names = [f"{i + 1:03d}.Bird_{i}" for i in range(200)]
    raw = cu_birds_tree.write(tmp_path, names)
    (raw / "images" / names[7] / f"{names[7]}_0000_7.jpg").unlink()
    (raw / "images" / names[7] / f"{names[7]}_0001_7.jpg").unlink()
    (raw / "images" / names[7]).rmdir()
    with pytest.raises(FileNotFoundError, match=names[7]):
        cu_birds.plan(str(raw))


def test_wrong_number_of_classes_is_an_error(tmp_path):
    raw = cu_birds_tree.write(tmp_path, [f"{i + 1:03d}.Bird_{i}" for i in range(199)])
    with pytest.raises(ValueError, match="199"):
        cu_birds.plan(str(raw))
