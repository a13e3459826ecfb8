"""mini_imagenet: class ids across the three pickles, sorted synsets, rows in class_dict order."""

import io
import pickle

import numpy as np
import pytest
from PIL import Image

from ctx_tf.data.sources import mini_imagenet
from tests.data.sources.raw_trees import mini_imagenet as mini_imagenet_tree


def test_plan_ids_names_and_rows_follow_the_official_rules(tmp_path, rng_seed):
    written = mini_imagenet_tree.write_caches(tmp_path, np.random.default_rng(rng_seed))
    plan = mini_imagenet.plan(str(tmp_path))
    assert dict(plan.classes_per_split) == {"TRAIN": 64, "VALID": 16, "TEST": 20}
    assert plan.spec_type == "flat" and plan.skipped == ()
    assert [c.name for c in plan.classes] == [
        n for part in ("train", "val", "test") for n in written[part][0]]
    assert all(c.num_images == 2 for c in plan.classes)
    for class_id in (0, 63, 64, 99):
        part = "train" if class_id < 64 else "val" if class_id < 80 else "test"
        names, class_dict, image_data = written[part]
        cls = plan.classes[class_id]
        refs = list(cls.images())
        path = mini_imagenet.cache_path(str(tmp_path), part)
        assert [(r.path, r.row) for r in refs] == [(path, row) for row in class_dict[cls.name]]
        for ref in refs:
            np.testing.assert_array_equal(mini_imagenet.image_rows(ref.path)[ref.row],
                                          image_data[ref.row])
            buf = io.BytesIO()  # the official rule: Image.fromarray(row) saved as a JPEG
            Image.fromarray(image_data[ref.row]).save(buf, format="JPEG")
            assert ref.encode() == buf.getvalue()
    pickle.loads(pickle.dumps(plan))


def test_missing_pickle_names_the_path(tmp_path, rng_seed):
    mini_imagenet_tree.write_caches(tmp_path, np.random.default_rng(rng_seed))
    (tmp_path / "mini-imagenet-cache-val.pkl").unlink()
    with pytest.raises(FileNotFoundError, match=r"mini-imagenet-cache-val\.pkl is missing"):
        mini_imagenet.plan(str(tmp_path))


def test_wrong_class_count_is_an_error(tmp_path, rng_seed):
    mini_imagenet_tree.write_caches(tmp_path, np.random.default_rng(rng_seed),
                  counts={"train": 64, "val": 15, "test": 20})
    with pytest.raises(ValueError, match=r"holds 15 classes; the official val split has 16"):
        mini_imagenet.plan(str(tmp_path))
