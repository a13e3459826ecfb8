"""Comparability with the published rows: official records (the spec) and official protocol."""

import json

import pytest

from ctx_tf.data import facts
from ctx_tf.data import sampling
from ctx_tf.data.dataset_spec import (BiLevelDatasetSpecification, DatasetSpecification,
                                      Split, dataset_spec_from_dict, load_dataset_spec)
from ctx_tf.data.sources import dtd
from ctx_tf.data.writing import engine
from ctx_tf.evaluation import comparability
from tests.conftest import official_spec_dir
from tests.data.sources.raw_trees import tiny_jpeg

OFFICIAL_PROTOCOL = dict(num_episodes=600, image_size=224, split="test",
                         episode_config=sampling.EpisodeDescriptionConfig())


def _flat_spec(name, names_and_counts, classes_per_split):
    """A DatasetSpecification of `name` from [(class name, images), ...] in class-id order."""
    return DatasetSpecification(
        name=name, classes_per_split=dict(zip(Split, classes_per_split)),
        images_per_class={i: n for i, (_, n) in enumerate(names_and_counts)},
        class_names={i: c for i, (c, _) in enumerate(names_and_counts)}, path=f"/records/{name}")


def _official_flat(name):
    spec = facts.dataset_spec(name)
    counts = spec["classes_per_split"]
    rows = [(spec["class_names"][str(i)], spec["images_per_class"][str(i)])
            for i in range(len(spec["class_names"]))]
    return rows, (counts["TRAIN"], counts["VALID"], counts["TEST"])


def test_a_converted_tree_with_the_official_counts_matches_and_is_comparable(tmp_path):
    # Independent of the shipped spec: DTD's 47 texture folders of 120 images each, converted
    # by the engine, give records whose spec is the official one.
    for name in facts.dataset_spec("dtd")["class_names"].values():
        folder = tmp_path / "dtd" / "images" / name
        folder.mkdir(parents=True)
        for j in range(120):
            (folder / f"{name}_{j:04d}.jpg").write_bytes(tiny_jpeg())
    engine.convert(dtd.plan(str(tmp_path / "dtd")), tmp_path / "records", workers=1,
                   log=lambda line: None)
    check = comparability.check_source("dtd", load_dataset_spec(tmp_path / "records" / "dtd"))
    assert check.official and check.matches, check.differences
    assert check.differences == ()
    assert check.summary == "matches the official spec (TEST: 840 of 840 images; 7 of 7 classes)"
    assert comparability.comparison_verdict(
        check, comparability.check_protocol(**OFFICIAL_PROTOCOL)) == (True, "")
    # One image fewer in a TRAIN class: the records are no longer the official ones.
    (tmp_path / "dtd" / "images" / "banded" / "banded_0000.jpg").unlink()
    engine.convert(dtd.plan(str(tmp_path / "dtd")), tmp_path / "fewer", workers=1,
                   log=lambda line: None)
    fewer = comparability.check_source("dtd", load_dataset_spec(tmp_path / "fewer" / "dtd"))
    assert not fewer.matches and fewer.differences


@pytest.mark.parametrize("name", ["traffic_sign", "ilsvrc_2012", "omniglot"])
def test_an_official_spec_loaded_from_a_records_directory_matches(name, tmp_path):
    # Each spec type, read as evaluation reads it (a spec object, not the dict).
    check = comparability.check_source(name, load_dataset_spec(official_spec_dir(tmp_path, name)))
    assert check.official and check.matches, check.differences
    assert check.summary.startswith("matches the official spec (TEST: ")
    assert comparability.comparison_verdict(
        check, comparability.check_protocol(**OFFICIAL_PROTOCOL)) == (True, "")


def test_a_raw_spec_dict_is_accepted():
    assert comparability.check_source("dtd", facts.dataset_spec("dtd")).matches
    spec = facts.dataset_spec("dtd")
    spec["images_per_class"]["40"] -= 1
    check = comparability.check_source("dtd", spec)
    assert not check.matches
    assert "TEST: 1 class(es) hold another number of images" in " ".join(check.differences)


def test_a_miniature_with_fewer_images_is_not_comparable():
    rows, counts = _official_flat("traffic_sign")
    official_images = sum(n for _, n in rows)
    miniature = _flat_spec("traffic_sign", [(c, 24) for c, _ in rows], counts)
    check = comparability.check_source("traffic_sign", miniature)
    assert check.official and not check.matches
    assert check.summary == f"TEST: {24 * 43:,} of {official_images:,} images; 43 of 43 classes"
    assert f"TEST: 1,032 images, official {official_images:,}" in check.differences
    assert any(d.startswith("TEST: 43 class(es) hold another number of images")
               for d in check.differences)
    comparable, reason = comparability.comparison_verdict(
        check, comparability.check_protocol(**OFFICIAL_PROTOCOL))
    assert not comparable
    assert reason == f"traffic_sign: not the official records ({check.summary})"
    assert json.loads(json.dumps(check.to_json())) == {
        "official": True, "matches": False, "summary": check.summary,
        "differences": list(check.differences)}


def test_other_class_names_are_not_comparable():
    rows, counts = _official_flat("cu_birds")
    test_ids = range(counts[0] + counts[1], sum(counts))
    renamed = {test_ids[0]: "my_bird", test_ids[5]: "another_bird"}
    rows = [(renamed.get(i, c), n) for i, (c, n) in enumerate(rows)]
    check = comparability.check_source("cu_birds", _flat_spec("cu_birds", rows, counts))
    assert not check.matches
    assert check.summary.endswith("; 2 class names differ")
    assert "TEST: 2 class name(s) not in the official split ('another_bird', 'my_bird')" in (
        check.differences)
    assert not comparability.comparison_verdict(check, [])[0]


def test_fewer_classes_and_another_class_order_are_differences():
    rows, counts = _official_flat("aircraft")
    fewer = comparability.check_source(
        "aircraft", _flat_spec("aircraft", rows[:-1], (counts[0], counts[1], counts[2] - 1)))
    assert "TEST: 14 classes, official 15" in fewer.differences
    assert fewer.summary == "TEST: 1,400 of 1,500 images; 14 of 15 classes; 1 class name differs"
    rows[0], rows[1] = rows[1], rows[0]
    swapped = comparability.check_source("aircraft", _flat_spec("aircraft", rows, counts))
    assert swapped.differences == ("TRAIN: the class names are in another class-id order",)
    # The evaluated split is intact; the summary still says the spec is not the official one.
    assert swapped.summary == ("TEST: 1,500 of 1,500 images; 15 of 15 classes; other splits "
                               "differ (1 difference(s))")


def test_omniglot_alphabets_are_checked():
    spec = facts.dataset_spec("omniglot")
    # Move one character from the first alphabet to the second: same classes, other alphabets.
    spec["classes_per_superclass"]["0"] -= 1
    spec["classes_per_superclass"]["1"] += 1
    check = comparability.check_source("omniglot", spec)
    assert not check.matches
    first, second = (spec["superclass_names"]["0"], spec["superclass_names"]["1"])
    assert check.differences == (
        f"TRAIN: 2 superclass(es) hold another number of classes ({first!r}, {second!r})",)
    assert isinstance(dataset_spec_from_dict(spec), BiLevelDatasetSpecification)


def test_ilsvrc_hierarchy_is_checked():
    spec = facts.dataset_spec("ilsvrc_2012")
    test_nodes = spec["split_subgraphs"]["TEST"]
    leaf = next(n for n in test_nodes if not n["children_ids"])
    # A valid spec with the same leaves and counts whose WordNet graph has one more node.
    test_nodes.append({"wn_id": "n99999999", "words": "extra", "children_ids": [leaf["wn_id"]],
                       "parents_ids": []})
    leaf["parents_ids"].append("n99999999")
    counts = spec["images_per_class"]["TEST"]
    counts["n99999999"] = counts[leaf["wn_id"]]
    check = comparability.check_source("ilsvrc_2012", spec)
    assert check.differences == ("TEST: the WordNet subgraph differs (1 node(s), 1 edge(s))",)
    assert not check.matches


def test_a_flat_spec_under_a_hierarchical_name_is_not_the_official_one():
    official = dataset_spec_from_dict(facts.dataset_spec("ilsvrc_2012"))
    rows = [(official.class_names[i], official.num_images(i)) for i in range(1000)]
    counts = tuple(official.classes_per_split[s] for s in Split)
    check = comparability.check_source("ilsvrc_2012", _flat_spec("ilsvrc_2012", rows, counts))
    assert not check.matches
    assert check.differences == (
        "spec type DatasetSpecification, official HierarchicalDatasetSpecification",)


@pytest.mark.parametrize("name", ["my_source", "demo", "Omniglot"])
def test_user_sources_are_never_compared(name):
    # Even records identical to an official source's: only the official names are compared.
    check = comparability.check_source(name, facts.dataset_spec("omniglot"))
    assert check == comparability.SourceCheck(name=name, official=False, matches=False,
                                              summary="not a Meta-Dataset source")
    assert comparability.comparison_verdict(check, []) == (
        False, f"{name}: not a Meta-Dataset source")


def test_the_official_protocol_has_no_reasons():
    assert comparability.check_protocol(**OFFICIAL_PROTOCOL) == []
    config = sampling.EpisodeDescriptionConfig()
    recorded = json.loads(json.dumps(
        {name: getattr(config, name) for name in comparability.SAMPLING_PARAMETERS}))
    assert comparability.check_protocol(1000, 224, Split.TEST, recorded) == []
    assert comparability.check_protocol(600, 84, "TEST", config, published_image_size=84) == []


@pytest.mark.parametrize("change,expected", [
    ({"num_episodes": 599}, "599 episodes (the published rows use 600 or more)"),
    ({"image_size": 84}, "image size 84 (the published row used 224)"),
    ({"split": "valid"}, "the VALID split (the published rows are on TEST)"),
    ({"split": Split.TRAIN}, "the TRAIN split (the published rows are on TEST)"),
    ({"episode_config": sampling.EpisodeDescriptionConfig(num_ways=5, num_support=1,
                                                          num_query=15)},
     "not the official variable-way, variable-shot episodes (num_ways=5 (official None), "
     "num_support=1 (official None), num_query=15 (official None))"),
    ({"episode_config": {"min_ways": 5}}, "not the official variable-way, variable-shot episodes "
     "(num_ways not recorded"),
    ({"episode_config": None}, "the episode configuration is not recorded"),
])
def test_each_protocol_mismatch_withholds_the_comparison(change, expected):
    reasons = comparability.check_protocol(**dict(OFFICIAL_PROTOCOL, **change))
    assert len(reasons) == 1 and reasons[0].startswith(expected), reasons
    check = comparability.check_source("dtd", facts.dataset_spec("dtd"))
    comparable, reason = comparability.comparison_verdict(check, reasons)
    assert not comparable
    assert reason == f"dtd: not the official protocol ({reasons[0]})"


def test_a_config_object_with_the_attributes_is_accepted():
    class Recorded:
        pass

    recorded = Recorded()
    for name in comparability.SAMPLING_PARAMETERS:
        setattr(recorded, name, getattr(sampling.EpisodeDescriptionConfig(), name))
    assert comparability.episode_config_differences(recorded) == []
    recorded.max_num_query = 20
    assert comparability.episode_config_differences(recorded) == [
        "max_num_query=20 (official 10)"]
    # A num_support range survives a JSON round trip as a list and is still reported.
    assert comparability.episode_config_differences(
        dict(vars(recorded), max_num_query=10, num_support=[1, 5])) == [
        "num_support=(1, 5) (official None)"]


def test_several_protocol_reasons_make_one_line():
    reasons = comparability.check_protocol(100, 84, "valid", sampling.EpisodeDescriptionConfig())
    assert len(reasons) == 3
    check = comparability.check_source("vgg_flower", facts.dataset_spec("vgg_flower"))
    assert comparability.comparison_verdict(check, reasons) == (
        False, "vgg_flower: not the official protocol (" + "; ".join(reasons) + ")")


def test_bad_split_names_the_culprit():
    with pytest.raises(ValueError, match="'dev'"):
        comparability.check_protocol(600, 224, "dev", sampling.EpisodeDescriptionConfig())


def test_source_check_round_trips_through_json():
    rows, counts = _official_flat("traffic_sign")
    check = comparability.check_source(
        "traffic_sign", _flat_spec("traffic_sign", [(c, 1) for c, _ in rows], counts))
    payload = json.loads(json.dumps(check.to_json()))
    assert comparability.SourceCheck.from_json("traffic_sign", payload) == check
