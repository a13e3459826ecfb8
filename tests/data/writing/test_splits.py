"""Tests of ctx_tf.data.writing.splits: seeded and explicit splits of a new source's classes."""

import json

import pytest

from ctx_tf.data.writing import splits
from ctx_tf.data.writing.errors import SourceWriteError


def test_seeded_split_reproducible_and_explicit_lists():
    names = [f"n{i:02d}" for i in range(20)]
    a = splits.resolve_splits(names, None, seed=3)
    b = splits.resolve_splits(names, None, seed=3)
    c = splits.resolve_splits(names, None, seed=4)
    assert a == b and a != c
    assert [len(x) for x in a] == [14, 3, 3]
    assert sorted(sum(a, [])) == list(range(20))
    assert all(x == sorted(x) for x in a)
    # Explicit lists keep their order (like an official splits file).
    split = splits.resolve_splits(names, {"train": ["n05", "n01"], "valid": [2],
                                          "test": names[3:5] + [0] + names[6:]})
    assert split[0] == [5, 1] and split[1] == [2]
    assert splits.resolve_splits(names[:3], ([2], ["n00"], [1])) == [[2], [0], [1]]
    assert splits.resolve_splits(names[:3], (1, 0, 2)) == [[0], [], [1, 2]]
    with pytest.raises(SourceWriteError, match="summing"):
        splits.resolve_splits(names[:3], (1, 1, 2))
    with pytest.raises(SourceWriteError, match="n05"):
        splits.resolve_splits(names, {"TRAIN": ["n05", "n05"], "VALID": [], "TEST": []})
    with pytest.raises(SourceWriteError, match="no split"):
        splits.resolve_splits(names, {"TRAIN": ["n05"]})
    with pytest.raises(SourceWriteError, match="unknown class 'zz'"):
        splits.resolve_splits(names, {"TRAIN": ["zz"]})


def test_order_classes_groups_superclasses_by_split():
    names = ["a0", "a1", "b0", "c0", "c1"]
    supers = [("a", [0, 1]), ("b", [2]), ("c", [3, 4])]
    order, per_split, info = splits.order_classes(names, supers, [[2], [0], [1]])
    assert order == [3, 4, 0, 1, 2] and per_split == [2, 2, 1]
    assert info == (["c", "a", "b"], [1, 1, 1], [2, 2, 1])
    assert splits.order_classes(names, None, [[4, 0], [1], [2, 3]]) == (
        [4, 0, 1, 2, 3], [2, 1, 2], None)
    with pytest.raises(SourceWriteError, match="more than one superclass"):
        splits.order_classes(names, [("a", [0, 1]), ("b", [1, 2, 3, 4])], [[0], [1], []])
    with pytest.raises(SourceWriteError, match="in no superclass"):
        splits.order_classes(names, [("a", [0, 1])], [[0], [], []])


def test_load_splits_file(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"train": ["x"], "valid": [], "test": ["y"]}))
    assert splits.load_splits_file(path) == {"train": ["x"], "valid": [], "test": ["y"]}
    path.write_text("[1, 2]")
    with pytest.raises(SourceWriteError, match=f"splits file {path}: expected an object"):
        splits.load_splits_file(path)
    path.write_text("{")
    with pytest.raises(SourceWriteError, match="invalid JSON"):
        splits.load_splits_file(path)
