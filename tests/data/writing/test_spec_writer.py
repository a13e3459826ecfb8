"""Tests of ctx_tf.data.writing.spec_writer: every official spec survives parse, write, parse."""

import hashlib
import json

import pytest

from ctx_tf.data import facts
from ctx_tf.data.dataset_spec import (BiLevelDatasetSpecification, DatasetSpecification,
                                      HierarchicalDatasetSpecification, Split,
                                      dataset_spec_from_dict, load_dataset_spec)
from ctx_tf.data.writing import spec_writer
from ctx_tf.data.writing.errors import SourceWriteError
from tests.conftest import official_sha256

# All cheap: the TensorFlow 2.15.1 job (`-m compat`) runs every test here.
pytestmark = pytest.mark.compat

OFFICIAL = ["aircraft", "cu_birds", "dtd", "fungi", "ilsvrc_2012", "ilsvrc_2012_v2", "mscoco",
            "omniglot", "quickdraw", "traffic_sign", "vgg_flower"]


def spec_dict_of(spec):
    """Rebuilds a spec's JSON dict through the spec_writer builders."""
    if isinstance(spec, HierarchicalDatasetSpecification):
        return spec_writer.make_hierarchical_dataset_spec(
            spec.name, spec.path, spec.split_subgraphs, spec.images_per_node, spec.class_names)
    if isinstance(spec, BiLevelDatasetSpecification):
        return spec_writer.make_bilevel_dataset_spec(
            spec.name, spec.path, spec.superclass_names,
            [spec.superclasses_per_split[s] for s in Split], spec.classes_per_superclass,
            spec.class_names, spec.images_per_class)
    assert isinstance(spec, DatasetSpecification)
    return spec_writer.make_dataset_spec(
        spec.name, spec.path, spec.class_names, spec.images_per_class,
        [spec.classes_per_split[s] for s in Split])


@pytest.mark.parametrize("name", OFFICIAL)
def test_official_specs_round_trip(name, tmp_path):
    spec = dataset_spec_from_dict(facts.dataset_spec(name), source=f"official {name}")
    rebuilt = spec_dict_of(spec)
    # The official file itself, byte for byte up to its final newline (its sha256 is in the
    # facts' NOTICE).
    text = spec_writer.spec_to_json(rebuilt) + "\n"
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == official_sha256(
        f"{name}_dataset_spec.json")
    directory = tmp_path / spec.name
    directory.mkdir()
    written = spec_writer.write_dataset_spec(directory, rebuilt)
    assert written == str(directory / "dataset_spec.json")
    again = load_dataset_spec(directory)
    assert spec_dict_of(again) == dict(rebuilt, path=str(directory))
    assert [again.get_classes(s) for s in Split] == [spec.get_classes(s) for s in Split]
    assert [again.num_images(c) for c in range(again.num_classes)] == [
        spec.num_images(c) for c in range(spec.num_classes)]


def test_hierarchical_builder_checks_its_input():
    nodes = {"TRAIN": [{"wn_id": "a", "words": "a", "children_ids": [], "parents_ids": []}],
             "VALID": [], "TEST": []}
    counts = {"TRAIN": {"a": 3}, "VALID": {}, "TEST": {}}
    spec = spec_writer.make_hierarchical_dataset_spec("h", "/p", nodes, counts, ["a"])
    assert dataset_spec_from_dict(json.loads(spec_writer.spec_to_json(spec))).num_images(0) == 3
    with pytest.raises(SourceWriteError, match="2 class names for 1 leaves"):
        spec_writer.make_hierarchical_dataset_spec("h", "/p", nodes, counts, ["a", "b"])
    with pytest.raises(SourceWriteError, match="no count"):
        spec_writer.make_hierarchical_dataset_spec("h", "/p", nodes, dict(counts, TRAIN={}),
                                                   ["a"])
    with pytest.raises(SourceWriteError, match="not 0..1"):
        spec_writer.make_dataset_spec("d", "/p", {0: "a", 2: "b"}, [1, 1], (2, 0, 0))
    listed = spec_writer.make_dataset_spec("d", "/p", ["a", "b"], {1: 4, 0: 5}, (1, 1, 0))
    assert list(listed["images_per_class"].items()) == [("1", 4), ("0", 5)]
    with pytest.raises(SourceWriteError, match="exactly the splits"):
        spec_writer.make_hierarchical_dataset_spec("h", "/p", {"TRAIN": []}, counts, [])
