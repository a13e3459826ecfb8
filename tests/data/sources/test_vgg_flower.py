"""vgg_flower: class ids and imagelabels.mat order (the split: test_splits.py)."""

import pickle

import numpy as np
import pytest
import scipy.io

from ctx_tf.data.sources import vgg_flower
from tests.data.sources.raw_trees import official, official_class_names
from tests.data.sources.raw_trees import vgg_flower as vgg_flower_tree


def test_plan_reproduces_the_official_spec(tmp_path):
    spec = official("vgg_flower_dataset_spec.json")
    labels = vgg_flower_tree.labels()
    raw = vgg_flower_tree.write(tmp_path / "flowers", labels)
    plan = pickle.loads(pickle.dumps(vgg_flower.plan(str(raw))))
    assert [c.name for c in plan.classes] == official_class_names("vgg_flower")
    assert dict(plan.classes_per_split) == spec["classes_per_split"]
    assert plan.skipped == ()
    for cls in plan.classes:
        label = int(cls.name[:3])
        refs = list(cls.images())
        assert cls.num_images == len(refs) == label % 3 + 1
        assert [r.path for r in refs] == [
            str(raw / "jpg" / f"image_{n + 1:05d}.jpg")
            for n, image_label in enumerate(labels) if image_label == label]
        assert all(r.crop is None and not r.invert and r.row is None for r in refs)


def test_missing_imagelabels_names_the_path(tmp_path):
    raw = vgg_flower_tree.write(tmp_path, vgg_flower_tree.labels())
    (raw / "imagelabels.mat").unlink()
    with pytest.raises(FileNotFoundError, match=r"imagelabels\.mat"):
        vgg_flower.plan(str(raw))


def test_mat_file_without_labels_is_an_error(tmp_path):
    raw = vgg_flower_tree.write(tmp_path, vgg_flower_tree.labels())
    scipy.io.savemat(raw / "imagelabels.mat", {"setid": np.ones((1, 3))})
    with pytest.raises(ValueError, match="'labels'"):
        vgg_flower.plan(str(raw))
