"""The built-in demo source: deterministic, official layout, disjoint splits, cached."""

import json
import os

import numpy as np
import pytest

from ctx_tf.data import demo
from ctx_tf.data.dataset_spec import Split, load_dataset_spec

SMALL = dict(num_train_classes=6, num_valid_classes=5, num_test_classes=5, images_per_class=4,
             image_size=16)


@pytest.mark.compat
def test_generation_is_deterministic_and_classes_differ():
    a = demo.generate_images(3, 4, 16, 3, seed=1)
    b = demo.generate_images(3, 4, 16, 3, seed=1)
    c = demo.generate_images(3, 4, 16, 3, seed=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert a[0].shape == (4, 16, 16) and a[0].dtype == np.uint8
    # Deformations: two images of one class are not identical.
    assert not np.array_equal(a[0][0], a[0][1])


def test_source_layout_splits_and_cache(tmp_path):
    messages = []
    root = demo.ensure_demo_source(cache_dir=tmp_path, print_fn=messages.append, **SMALL)
    assert root == str(tmp_path)
    source = tmp_path / demo.DEMO_SOURCE_NAME
    spec = load_dataset_spec(str(source))
    train, valid, test = (set(spec.get_classes(s)) for s in (Split.TRAIN, Split.VALID, Split.TEST))
    assert (len(train), len(valid), len(test)) == (6, 5, 5)
    assert not (train & valid or train & test or valid & test)
    for class_id in train | valid | test:
        assert os.path.exists(spec.record_path(class_id))
    assert json.loads((source / demo.MARKER).read_text())["seed"] == 0
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".demo_staging")]
    assert any("Generating" in m for m in messages)

    mtime = os.path.getmtime(source / "dataset_spec.json")
    messages.clear()
    demo.ensure_demo_source(cache_dir=tmp_path, print_fn=messages.append, **SMALL)
    assert any("cached" in m for m in messages)
    assert os.path.getmtime(source / "dataset_spec.json") == mtime

    # Other parameters regenerate the cache in place.
    demo.ensure_demo_source(cache_dir=tmp_path, print_fn=messages.append,
                            **dict(SMALL, images_per_class=5))
    assert json.loads((source / demo.MARKER).read_text())["images_per_class"] == 5


def test_unknown_parameter_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown demo parameters"):
        demo.ensure_demo_source(cache_dir=tmp_path, num_classes=3)


def test_default_cache_dir_honours_ctx_tf_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("CTX_TF_CACHE", str(tmp_path))
    assert demo.default_cache_dir() == os.path.join(str(tmp_path), "demo")
