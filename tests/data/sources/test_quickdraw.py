"""quickdraw: class ids and lazy rows of the .npy classes (the 70/15/15 split: test_splits.py)."""

import pickle
import types

import numpy as np
import pytest

from ctx_tf.data.sources import quickdraw
from tests.data.sources.raw_trees import official, official_class_names
from tests.data.sources.raw_trees import quickdraw as quickdraw_tree


def test_plan_reproduces_the_official_spec(tmp_path):
    spec = official("quickdraw_dataset_spec.json")
    names = sorted(official_class_names("quickdraw"))
    raw = quickdraw_tree.write(tmp_path / "quickdraw", names)
    (raw / "README.txt").write_text("numpy_bitmap\n")
    plan = pickle.loads(pickle.dumps(quickdraw.plan(str(raw))))
    assert [c.name for c in plan.classes] == official_class_names("quickdraw")
    assert dict(plan.classes_per_split) == spec["classes_per_split"]
    assert plan.skipped == ((str(raw / "README.txt"), plan.skipped[0][1]),)
    for cls in plan.classes:
        k = names.index(cls.name)
        refs = cls.images()
        assert isinstance(refs, types.GeneratorType)  # rows are listed lazily
        refs = list(refs)
        assert cls.num_images == len(refs) == k % 3 + 1
        assert [(r.path, r.row) for r in refs] == [
            (str(raw / f"{cls.name}.npy"), i) for i in range(k % 3 + 1)]
        assert all(r.crop is None and not r.invert for r in refs)


def test_row_count_comes_from_the_header_of_a_bool_array(tmp_path):
    path = tmp_path / "cat.npy"
    quickdraw_tree.save(path, np.zeros((5, 784), dtype=bool))
    assert quickdraw.num_rows(str(path)) == 5


def test_array_that_is_not_rows_of_drawings_is_an_error(tmp_path):
    names = [f"class{i:03d}" for i in range(20)]
    raw = quickdraw_tree.write(tmp_path, names)
    quickdraw_tree.save(raw / "class007.npy", np.zeros((2, 28, 28), dtype=np.uint8))
    with pytest.raises(ValueError, match="class007.npy"):
        quickdraw.plan(str(raw))


def test_missing_folder_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent"):
        quickdraw.plan(str(tmp_path / "absent"))
