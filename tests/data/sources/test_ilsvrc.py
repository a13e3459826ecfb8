"""ilsvrc: official class ids, splits, hierarchy, image counts and duplicate skipping."""

import pickle

import pytest

from ctx_tf.data import facts
from ctx_tf.data.dataset_spec import SPLIT_NAMES
from ctx_tf.data.sources import ilsvrc
from ctx_tf.data.writing.spec_writer import spanning_counts
from tests.data.sources.raw_trees import official
from tests.data.sources.raw_trees import ilsvrc as ilsvrc_tree


def _leaf_splits(spec):
    return {split: sorted(n["wn_id"] for n in spec["split_subgraphs"][split]
                          if not n["children_ids"]) for split in SPLIT_NAMES}


@pytest.mark.parametrize("name,sizes", [("ilsvrc_2012", (712, 158, 130)),
                                        ("ilsvrc_2012_v2", (1000, 0, 0))])
def test_official_class_order_and_split_sizes(name, sizes):
    spec = official(f"{name}_dataset_spec.json")
    classes = ilsvrc.official_classes(facts.dataset_spec(name))
    assert tuple(len(classes[s]) for s in SPLIT_NAMES) == sizes
    assert [w for s in SPLIT_NAMES for w in classes[s]] == [
        spec["class_names"][str(i)] for i in range(1000)]


@pytest.mark.parametrize("name", ilsvrc.NAMES)
def test_spanning_image_counts_of_the_official_leaf_counts_equal_the_official_spec(name):
    spec = official(f"{name}_dataset_spec.json")
    leaf_images = official(f"{name}_num_leaf_images.json")
    for split in SPLIT_NAMES:
        assert spanning_counts(spec["split_subgraphs"][split], leaf_images) == (
            spec["images_per_class"][split])


def test_full_tree_gives_the_official_spec_fields(tmp_path):
    jpeg = ilsvrc_tree.jpeg()
    for synset in official("ilsvrc_2012_num_leaf_images.json"):
        (tmp_path / synset).mkdir()
        (tmp_path / synset / f"{synset}_1.JPEG").write_bytes(jpeg)
    (tmp_path / "n02133161" / "n02133161_3419.JPEG").write_bytes(jpeg)  # a duplicate
    (tmp_path / "n01440764" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    for name in ilsvrc.NAMES:
        spec = official(f"{name}_dataset_spec.json")
        plan = ilsvrc.plan(str(tmp_path), name)
        assert plan.name == name and plan.spec_type == "hierarchical"
        assert [c.name for c in plan.classes] == [spec["class_names"][str(i)]
                                                  for i in range(1000)]
        leaf_splits = _leaf_splits(spec)
        assert dict(plan.classes_per_split) == {s: len(v) for s, v in leaf_splits.items()}
        assert plan.spec_fields["split_subgraphs"] == spec["split_subgraphs"]
        assert all(c.num_images == 1 for c in plan.classes)
        counts = plan.spec_fields["images_per_class"]
        for split, split_leaves in leaf_splits.items():
            assert set(counts[split]) == set(spec["images_per_class"][split])
            assert all(counts[split][leaf] == 1 for leaf in split_leaves)
            roots = [n["wn_id"] for n in spec["split_subgraphs"][split] if not n["parents_ids"]]
            assert [counts[split][r] for r in roots] == [len(split_leaves)] * len(roots)
        assert sorted(plan.skipped) == [
            (str(tmp_path / "n01440764" / ".DS_Store"),
             "not a .JPEG file; the official image count leaves it out"),
            (str(tmp_path / "n02133161" / "n02133161_3419.JPEG"),
             "also in CUB-200 / Caltech-101 / Caltech-256 (official ImageNet duplicate lists)")]


def test_partial_download_names_the_missing_synsets(tmp_path):
    with pytest.raises(FileNotFoundError,
                       match=r"lacks 996 of the 1000 ILSVRC-2012 synset folders of ilsvrc_2012 "
                             r"\(first: n01484850, n01491361,"):
        ilsvrc.plan(str(ilsvrc_tree.write_subset(tmp_path)))


def test_subset_plan_describes_exactly_the_present_synsets(tmp_path):
    raw = ilsvrc_tree.write_subset(tmp_path)
    plan = ilsvrc.plan(str(raw), allow_missing_classes=True)
    assert [c.name for c in plan.classes] == ["n01440764", "n01443537", "n02133161", "n02666196"]
    assert dict(plan.classes_per_split) == {"TRAIN": 2, "VALID": 1, "TEST": 1}
    # Sorted listing (as strings), duplicate left out.
    assert [[r.path for r in c.images()] for c in plan.classes] == [
        [str(raw / "n01440764" / f) for f in
         ("n01440764_10.JPEG", "n01440764_2.jpeg", "n01440764_9.JPEG")],
        [str(raw / "n01443537" / "n01443537_1.JPEG")],
        [str(raw / "n02133161" / f) for f in ("n02133161_40.JPEG", "n02133161_5.JPEG")],
        [str(raw / "n02666196" / f) for f in ("n02666196_7.JPEG", "n02666196_8.JPEG")]]
    assert [c.num_images for c in plan.classes] == [3, 1, 2, 2]
    assert [p for p, _ in plan.skipped] == [str(raw / "n02133161" / "n02133161_3419.JPEG")]
    official = facts.dataset_spec("ilsvrc_2012")["split_subgraphs"]
    expected_leaves = {"TRAIN": ["n01440764", "n01443537"], "VALID": ["n02133161"],
                       "TEST": ["n02666196"]}
    for split, subgraph in plan.spec_fields["split_subgraphs"].items():
        ids = {n["wn_id"] for n in subgraph}
        assert ilsvrc.leaves(subgraph) == expected_leaves[split]
        for node in subgraph:
            assert set(node["children_ids"]) | set(node["parents_ids"]) <= ids
        # Kept nodes are the official ones (same words), in the official order.
        full = {n["wn_id"]: n for n in official[split]}
        assert [n["wn_id"] for n in subgraph] == [w for w in full if w in ids]
        assert all(n["words"] == full[n["wn_id"]]["words"] for n in subgraph)
        roots = [n["wn_id"] for n in subgraph if not n["parents_ids"]]
        counts = plan.spec_fields["images_per_class"][split]
        assert set(counts) == ids
        total = sum(c.num_images for c in plan.classes if c.name in expected_leaves[split])
        assert [counts[r] for r in roots] == [total] * len(roots)
    v2 = ilsvrc.plan(str(raw), "ilsvrc_2012_v2", allow_missing_classes=True)
    assert dict(v2.classes_per_split) == {"TRAIN": 4, "VALID": 0, "TEST": 0}
    assert v2.spec_fields["split_subgraphs"]["VALID"] == []
    assert ilsvrc.leaves(v2.spec_fields["split_subgraphs"]["TRAIN"]) == sorted(ilsvrc_tree.SUBSET)
    pickle.loads(pickle.dumps(plan))


def test_unknown_folders_and_missing_root_are_errors(tmp_path):
    raw = ilsvrc_tree.write_subset(tmp_path)
    (raw / "n99999999").mkdir()
    with pytest.raises(ValueError, match="not ILSVRC-2012 synsets of the official spec: n99999999"):
        ilsvrc.plan(str(raw), allow_missing_classes=True)
    with pytest.raises(FileNotFoundError, match="nowhere is missing"):
        ilsvrc.plan(str(tmp_path / "nowhere"))
    with pytest.raises(KeyError, match="not an ILSVRC source"):
        ilsvrc.plan(str(raw), "omniglot")
