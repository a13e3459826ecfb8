"""dtd: class ids and image order of the texture folders (the split: test_splits.py)."""

import pickle

import pytest

from ctx_tf.data.sources import dtd
from tests.data.sources.raw_trees import official, official_class_names
from tests.data.sources.raw_trees import dtd as dtd_tree


def test_plan_reproduces_the_official_spec(tmp_path):
    spec = official("dtd_dataset_spec.json")
    names = sorted(official_class_names("dtd"))
    raw = dtd_tree.write(tmp_path / "dtd", names)
    stray = raw / "images" / "waffled" / ".directory"
    stray.write_text("[Dolphin]\n")
    top_file = raw / "images" / "Thumbs.db"
    top_file.write_bytes(b"\0")
    plan = pickle.loads(pickle.dumps(dtd.plan(str(raw))))
    assert [c.name for c in plan.classes] == official_class_names("dtd")
    assert dict(plan.classes_per_split) == spec["classes_per_split"]
    assert sorted(path for path, _ in plan.skipped) == [str(top_file), str(stray)]
    for cls in plan.classes:
        k = names.index(cls.name)
        refs = list(cls.images())
        assert cls.num_images == len(refs) == k % 3 + 1
        assert [r.path for r in refs] == [
            str(raw / "images" / cls.name / f"{cls.name}_{j:04d}.jpg") for j in range(k % 3 + 1)]


def test_dot_directory_is_an_image_outside_waffled(tmp_path):
    # The official converter skips `.directory` only where the release has one.
    names = [f"texture{i:02d}" for i in range(47)]
    raw = dtd_tree.write(tmp_path, names)
    (raw / "images" / names[3] / ".directory").write_text("x")
    by_name = {c.name: c for c in dtd.plan(str(raw)).classes}
    assert str(raw / "images" / names[3] / ".directory") in [
        r.path for r in by_name[names[3]].images()]


def test_missing_images_folder_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="images"):
        dtd.plan(str(tmp_path))
