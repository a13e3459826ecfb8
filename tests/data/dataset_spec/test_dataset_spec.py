"""Tests of ctx_tf.data.dataset_spec on the real official specs and on broken ones."""

import json

import pytest

from ctx_tf.data import dataset_spec as ds
from ctx_tf.data.dataset_spec import Split
from ctx_tf.data import facts
from tests.conftest import official_spec_dir

# All cheap: the TensorFlow 2.15.1 job (`-m compat`) runs every test here.
pytestmark = pytest.mark.compat

# name -> (spec class, (train, valid, test) classes, (min, max) images per class); docs/protocol.md §1.3.
OFFICIAL = {
    "ilsvrc_2012": ("HierarchicalDatasetSpecification", (712, 158, 130), (732, 1300)),
    "ilsvrc_2012_v2": ("HierarchicalDatasetSpecification", (1000, 0, 0), (732, 1300)),
    "omniglot": ("BiLevelDatasetSpecification", (883, 81, 659), (20, 20)),
    "aircraft": ("DatasetSpecification", (70, 15, 15), (100, 100)),
    "cu_birds": ("DatasetSpecification", (140, 30, 30), (41, 60)),
    "dtd": ("DatasetSpecification", (33, 7, 7), (120, 120)),
    "quickdraw": ("DatasetSpecification", (241, 52, 52), (114_000, 340_000)),
    "fungi": ("DatasetSpecification", (994, 200, 200), (6, 442)),
    "vgg_flower": ("DatasetSpecification", (71, 15, 16), (40, 258)),
    "traffic_sign": ("DatasetSpecification", (0, 0, 43), (210, 2250)),
    "mscoco": ("DatasetSpecification", (0, 40, 40), (198, 262_465)),
}


def install_spec(tmp_path, name, text=None):
    """Puts a spec (default: the official one) where a records directory holds it."""
    return official_spec_dir(tmp_path, name, text)


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_official_specs_load_with_the_documented_class_ranges(tmp_path, name):
    kind, counts, (lo, hi) = OFFICIAL[name]
    directory = install_spec(tmp_path, name)
    spec = ds.load_dataset_spec(directory)
    assert type(spec).__name__ == kind
    assert spec.name == name
    assert spec.path == str(directory)  # the placeholder path is replaced
    assert spec.num_classes == sum(counts)
    start = 0
    for split, n in zip(Split, counts):
        assert spec.get_classes(split) == range(start, start + n)
        start += n
    images = [spec.num_images(c) for c in range(spec.num_classes)]
    if name == "quickdraw":  # "~114k-340k" in the table: check the order of magnitude
        assert 100_000 < min(images) and max(images) < 400_000
    else:
        assert (min(images), max(images)) == (lo, hi)
    assert spec.get_total_images_per_class(0) == images[0]
    assert spec.record_path(7) == str(directory / "7.tfrecords")


def test_imagenet_totals_and_graphs(tmp_path):
    spec = ds.load_dataset_spec(install_spec(tmp_path, "ilsvrc_2012"))
    assert sum(spec.num_images(c) for c in range(1000)) == 1_280_764
    expected = {Split.TRAIN: (1011, 712, "n00001740"), Split.VALID: (200, 158, "n02075296"),
                Split.TEST: (180, 130, "n03183080")}
    for split, (num_nodes, num_leaves, root) in expected.items():
        graph = spec.get_split_subgraph(split)
        assert len(graph) == num_nodes
        leaves = spec.get_leaves(split)
        assert len(leaves) == num_leaves
        roots = [w for w, n in graph.items() if not n.parents_ids]
        assert roots == [root]
        spans = spec.get_spanning_leaves(split)
        assert spans[root] == frozenset(leaves)
        # Class ids of the split are its leaves in wn_id order.
        classes = spec.get_classes(split)
        assert [spec.class_names[c] for c in classes] == leaves
        for node in graph.values():
            assert len(node.children_ids) != 1  # single-child nodes were collapsed
    assert sum(1 for n in spec.get_split_subgraph(Split.TRAIN).values()
               if len(n.parents_ids) > 1) == 50
    assert spec.class_names_to_ids["n01440764"] in spec.get_classes(Split.TRAIN)


def test_imagenet_v2_is_all_train(tmp_path):
    spec = ds.load_dataset_spec(install_spec(tmp_path, "ilsvrc_2012_v2"))
    assert len(spec.get_split_subgraph(Split.TRAIN)) == 1399
    assert spec.class_names[0] == "n01440764" and spec.class_names[999] == "n15075141"
    assert spec.get_split_subgraph(Split.VALID) == {}


def test_omniglot_superclasses(tmp_path):
    spec = ds.load_dataset_spec(install_spec(tmp_path, "omniglot"))
    assert [len(spec.get_superclasses(s)) for s in Split] == [25, 5, 20]
    assert spec.get_superclasses(Split.VALID) == range(25, 30)
    assert len(spec.classes_per_superclass) == 50
    assert min(spec.classes_per_superclass.values()) == 14
    # Superclasses tile the classes of their split, in order.
    for split in Split:
        ranges = [spec.get_classes_of_superclass(s) for s in spec.get_superclasses(split)]
        assert ranges[0].start == spec.get_classes(split).start
        assert ranges[-1].stop == spec.get_classes(split).stop
        assert all(a.stop == b.start for a, b in zip(ranges, ranges[1:]))
    assert spec.superclass_names[25].startswith("Blackfoot")
    assert spec.class_names[883].startswith("Blackfoot")
    rel, absolute = spec.get_class_ids_from_superclass_subclass_inds(Split.VALID, 26, [0, 3])
    first = spec.first_class_of_superclass(26)
    assert absolute == [first, first + 3] and rel == [first - 883, first + 3 - 883]
    with pytest.raises(ValueError, match="superclass 3 is not in split VALID"):
        spec.get_class_ids_from_superclass_subclass_inds(Split.VALID, 3, [0])


# ------------------------------------------------------------------------ error handling


def _plain_spec(**overrides):
    data = {
        "name": "toy",
        "classes_per_split": {"TRAIN": 2, "VALID": 1, "TEST": 1},
        "images_per_class": {str(i): 10 for i in range(4)},
        "class_names": {str(i): f"class_{i}" for i in range(4)},
        "path": "/path/to/records/toy",
        "file_pattern": "{}.tfrecords",
        "__class__": "DatasetSpecification",
    }
    data.update(overrides)
    return data


def test_toy_plain_spec_roundtrip(tmp_path):
    directory = install_spec(tmp_path, "toy", json.dumps(_plain_spec()))
    spec = ds.load_dataset_spec(str(directory) + "/")
    assert spec.get_classes("valid") == range(2, 3)
    assert spec.split_of_class(3) == Split.TEST
    with pytest.raises(ValueError, match="class id 4 is not in"):
        spec.num_images(4)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", r"dataset_spec.json: malformed JSON"),
        (json.dumps(_plain_spec(__class__="FancySpecification")),
         r"unknown '__class__' 'FancySpecification'"),
        (json.dumps(_plain_spec(classes_per_split={"TRAIN": 3, "VALID": 1, "TEST": 1})),
         r"class_names has 4 entries but the sum of classes_per_split is 5"),
        (json.dumps(_plain_spec(images_per_class={"0": 1, "1": 2, "2": 3})),
         r"images_per_class has 3 entries"),
        (json.dumps(_plain_spec(images_per_class={"0": 1, "1": 2, "2": 3, "3": -1})),
         r"images_per_class\[3\] must be a non-negative integer"),
        (json.dumps(_plain_spec(classes_per_split={"TRAIN": 4, "VALID": 0})),
         r"field 'classes_per_split' has no entry for \['TEST'\]"),
        (json.dumps({k: v for k, v in _plain_spec().items() if k != "class_names"}),
         r"missing field 'class_names'"),
        (json.dumps(_plain_spec(file_pattern="{}.rec")), r"field 'file_pattern'"),
        (json.dumps(_plain_spec(name="other")),
         r"field 'name' is 'other' but the directory is named 'toy'"),
    ],
)
def test_bad_specs_name_the_file_and_field(tmp_path, text, message):
    directory = install_spec(tmp_path, "toy", text)
    with pytest.raises(ds.DatasetSpecError, match=message) as info:
        ds.load_dataset_spec(directory)
    assert str(directory / "dataset_spec.json") in str(info.value)


def test_missing_spec_file(tmp_path):
    (tmp_path / "toy").mkdir()
    with pytest.raises(ds.DatasetSpecError, match=r"toy/dataset_spec.json: no such file"):
        ds.load_dataset_spec(tmp_path / "toy")


def test_name_check_can_be_disabled(tmp_path):
    directory = install_spec(tmp_path, "toy", json.dumps(_plain_spec(name="other")))
    assert ds.load_dataset_spec(directory, check_name=False).name == "other"


def test_bilevel_counts_must_add_up(tmp_path):
    data = facts.dataset_spec("omniglot")
    data["name"] = "omniglot"
    data["classes_per_superclass"]["3"] += 1
    directory = install_spec(tmp_path, "omniglot", json.dumps(data))
    with pytest.raises(ds.DatasetSpecError,
                       match=r"class_names has 1623 entries but the sum of "
                             r"classes_per_superclass is 1624"):
        ds.load_dataset_spec(directory)


def test_hierarchical_duplicate_node_across_splits(tmp_path):
    data = facts.dataset_spec("ilsvrc_2012")
    # Move a TEST leaf into VALID as well: a wn_id may appear in one split graph only.
    test_leaf = next(n for n in data["split_subgraphs"]["TEST"] if not n["children_ids"])
    data["split_subgraphs"]["VALID"].append(dict(test_leaf, parents_ids=[]))
    directory = install_spec(tmp_path, "ilsvrc_2012", json.dumps(data))
    with pytest.raises(ds.DatasetSpecError,
                       match=rf"node {test_leaf['wn_id']} appears in both VALID and TEST"):
        ds.load_dataset_spec(directory)


def test_hierarchical_internal_counts_must_match_leaves(tmp_path):
    data = facts.dataset_spec("ilsvrc_2012")
    data["images_per_class"]["VALID"]["n02075296"] += 1  # the VALID root, 'carnivore'
    directory = install_spec(tmp_path, "ilsvrc_2012", json.dumps(data))
    with pytest.raises(ds.DatasetSpecError,
                       match=r"images_per_class.VALID\[n02075296\] is \d+, but the leaves"):
        ds.load_dataset_spec(directory)


def test_hierarchical_dangling_child(tmp_path):
    data = facts.dataset_spec("ilsvrc_2012")
    data["split_subgraphs"]["TEST"][0]["children_ids"].append("n99999999")
    directory = install_spec(tmp_path, "ilsvrc_2012", json.dumps(data))
    with pytest.raises(ds.DatasetSpecError, match=r"n99999999 is not a node of that split"):
        ds.load_dataset_spec(directory)


def test_spec_on_a_tf_gfile_filesystem():
    """Specs on any filesystem tf.io.gfile reads (here TF's in-memory ram://)."""
    import tensorflow as tf

    directory = "ram://specs/toy"
    tf.io.gfile.makedirs(directory)
    with tf.io.gfile.GFile(directory + "/dataset_spec.json", "w") as f:
        f.write(json.dumps(_plain_spec()))
    spec = ds.load_dataset_spec(directory)
    assert spec.path == directory and spec.record_path(1) == directory + "/1.tfrecords"
    with pytest.raises(ds.DatasetSpecError, match="ram://specs/nothing/dataset_spec.json"):
        ds.load_dataset_spec("ram://specs/nothing")


def test_use_ontologies_follows_the_official_names():
    assert ds.use_ontologies("ilsvrc_2012") == (True, False)
    assert ds.use_ontologies("ilsvrc_2012_v2") == (True, False)
    assert ds.use_ontologies("ilsvrc_2012", ignore_dag_ontology=True) == (False, False)
    assert ds.use_ontologies("omniglot") == (False, True)
    assert ds.use_ontologies("omniglot", ignore_bilevel_ontology=True) == (False, False)
    assert ds.use_ontologies("aircraft") == (False, False)


def test_load_with_a_spec_file_from_elsewhere(tmp_path):
    official = official_spec_dir(tmp_path / "specs", "omniglot") / "dataset_spec.json"
    spec = ds.load_dataset_spec(tmp_path / "omniglot", spec_file=official)
    assert spec.path == str(tmp_path / "omniglot") and spec.num_classes == 1623
    assert spec.record_path(7) == str(tmp_path / "omniglot" / "7.tfrecords")
    with pytest.raises(ds.DatasetSpecError, match="directory is named 'other'"):
        ds.load_dataset_spec(tmp_path / "other", spec_file=official)
    assert ds.load_dataset_spec(tmp_path / "other", check_name=False,
                                spec_file=official).name == "omniglot"
    with pytest.raises(ds.DatasetSpecError, match=f"{tmp_path / 'none.json'}: no such file"):
        ds.load_dataset_spec(tmp_path, spec_file=tmp_path / "none.json")
