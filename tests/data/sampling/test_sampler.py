"""Tests of the episode-description sampler: docs/protocol.md §2 (its invariants: §2.7)."""

import math

import numpy as np
import pytest

from ctx_tf.data import dataset_spec as ds
from ctx_tf.data import sampling
from ctx_tf.data.dataset_spec import Split
from ctx_tf.data.sampling import EpisodeDescriptionConfig, EpisodeDescriptionSampler
from tests.conftest import official_spec_dir

# All cheap: the TensorFlow 2.15.1 job (`-m compat`) runs every test here.
pytestmark = pytest.mark.compat

ALL_SOURCES = ["ilsvrc_2012", "ilsvrc_2012_v2", "omniglot", "aircraft", "cu_birds", "dtd",
               "quickdraw", "fungi", "vgg_flower", "traffic_sign", "mscoco"]


@pytest.fixture(scope="module")
def real_specs(tmp_path_factory):
    root = tmp_path_factory.mktemp("specs")
    return {name: ds.load_dataset_spec(official_spec_dir(root, name)) for name in ALL_SOURCES}


def toy_spec():
    """The official tests' toy source: 30 classes (15/5/10), image counts cycling 10, 20, 30."""
    counts = {i: [10, 20, 30][i % 3] for i in range(30)}
    return ds.DatasetSpecification(
        name="toy", classes_per_split={Split.TRAIN: 15, Split.VALID: 5, Split.TEST: 10},
        images_per_class=counts, class_names={i: f"c{i}" for i in range(30)}, path="/toy")


def hierarchy_kind(name):
    return {"use_dag_hierarchy": name.startswith("ilsvrc_2012"),
            "use_bilevel_hierarchy": name == "omniglot"}


def check_invariants(spec, sampler, description, config):
    offset = spec.get_classes(sampler.split).start
    ways = len(description)
    class_ids = [c for c, _, _ in description]
    assert len(set(class_ids)) == ways, "classes repeat"
    for rel, shots, queries in description:
        assert 0 <= rel < sampler.num_classes
        assert shots >= 1 and queries >= 1
        assert shots + queries <= spec.num_images(offset + rel)
        assert queries <= config.max_num_query
    assert len({q for _, _, q in description}) == 1, "query size differs between classes"
    assert sum(s for _, s, _ in description) <= config.max_support_set_size
    assert config.min_ways <= ways <= config.max_ways_upper_bound


# ----------------------------------------------------------------------- configuration


def test_config_defaults_are_the_official_variable_way_and_shot():
    config = EpisodeDescriptionConfig()
    assert (config.num_ways, config.num_support, config.num_query) == (None, None, None)
    assert (config.min_ways, config.max_ways_upper_bound, config.max_num_query) == (5, 50, 10)
    assert (config.max_support_set_size, config.max_support_size_contrib_per_class) == (500, 100)
    assert config.min_log_weight == pytest.approx(math.log(0.5), abs=1e-15)
    assert config.max_log_weight == pytest.approx(math.log(2.0), abs=1e-15)
    assert config.max_ways == 50
    assert EpisodeDescriptionConfig(num_ways=7).max_ways == 7


@pytest.mark.parametrize("kwargs, missing", [
    (dict(min_ways=None), "min_ways"),
    (dict(max_ways_upper_bound=None), "max_ways_upper_bound"),
    (dict(max_num_query=None), "max_num_query"),
    (dict(max_support_set_size=None), "max_support_set_size"),
    (dict(max_support_size_contrib_per_class=None), "max_support_size_contrib_per_class"),
    (dict(min_log_weight=None), "min_log_weight"),
    (dict(max_log_weight=None), "max_log_weight"),
])
def test_config_requires_dependent_parameters(kwargs, missing):
    with pytest.raises(RuntimeError, match=missing):
        EpisodeDescriptionConfig(**kwargs)


@pytest.mark.parametrize("kwargs, fixed", [
    (dict(num_ways=5, min_ways=None, max_ways_upper_bound=None),
     lambda description: len(description) == 5),
    (dict(num_query=5, max_num_query=None),
     lambda description: {q for _, _, q in description} == {5}),
    (dict(num_support=5, max_support_set_size=None, max_support_size_contrib_per_class=None,
          min_log_weight=None, max_log_weight=None),
     lambda description: {s for _, s, _ in description} == {5}),
])
def test_config_accepts_missing_dependents_when_fixed(kwargs, fixed):
    # A fixed way / shot / query count makes the parameters of its draw unnecessary: they may
    # be None, the config keeps them so and the sampler never needs them.
    config = EpisodeDescriptionConfig(**kwargs)
    assert {name: getattr(config, name) for name in kwargs} == kwargs
    spec = toy_spec()
    sampler = EpisodeDescriptionSampler(spec, Split.TRAIN, config, rng=np.random.RandomState(0))
    for _ in range(20):
        description = sampler.sample_episode_description()
        assert fixed(description), description
        assert len({c for c, _, _ in description}) == len(description) >= 1
        assert all(s + q <= spec.num_images(c) for c, s, q in description)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="ignore_hierarchy_probability"):
        EpisodeDescriptionConfig(ignore_hierarchy_probability=1.5)
    with pytest.raises(ValueError, match="simclr_episode_fraction"):
        EpisodeDescriptionConfig(simclr_episode_fraction=-0.1)
    with pytest.raises(ValueError, match="num_support"):
        EpisodeDescriptionConfig(num_support=(5, 2))


def test_config_is_gin_configurable(clean_gin):
    import gin

    with gin.unlock_config():
        gin.parse_config(["train/EpisodeDescriptionConfig.ignore_hierarchy_probability = 0.5",
                          "EpisodeDescriptionConfig.num_query = 3"])
    with gin.config_scope("train"):
        scoped = EpisodeDescriptionConfig()
    plain = EpisodeDescriptionConfig()
    assert scoped.ignore_hierarchy_probability == 0.5 and scoped.num_query == 3
    assert plain.ignore_hierarchy_probability == 0.0 and plain.num_query == 3


# ------------------------------------------------------------------ sampler invariants


@pytest.mark.parametrize("split", list(Split))
def test_toy_variable_episodes(split):
    spec, config = toy_spec(), EpisodeDescriptionConfig()
    sampler = EpisodeDescriptionSampler(spec, split, config, rng=0)
    for _ in range(300):
        check_invariants(spec, sampler, sampler.sample_episode_description(), config)


def test_real_specs_variable_episodes(real_specs):
    config = EpisodeDescriptionConfig()
    for name, spec in real_specs.items():
        for split in Split:
            if not spec.get_classes(split):
                with pytest.raises(ValueError, match=f"split {split.name} of {name} has no"):
                    EpisodeDescriptionSampler(spec, split, config, rng=0, **hierarchy_kind(name))
                continue
            sampler = EpisodeDescriptionSampler(spec, split, config, rng=5,
                                                **hierarchy_kind(name))
            for _ in range(60):
                check_invariants(spec, sampler, sampler.sample_episode_description(), config)


def test_fixed_way_shot_query():
    spec = toy_spec()
    config = EpisodeDescriptionConfig(num_ways=5, num_support=3, num_query=4)
    sampler = EpisodeDescriptionSampler(spec, Split.TRAIN, config, rng=0)
    for _ in range(100):
        description = sampler.sample_episode_description()
        assert len(description) == 5
        assert all(s == 3 and q == 4 for _, s, q in description)
        assert all(0 <= c < 15 for c, _, _ in description)
    assert sampler.compute_chunk_sizes() == (5 * 3 + 5 * 4, 15, 20)


def test_shot_range_draws_one_value_per_episode():
    spec = toy_spec()
    config = EpisodeDescriptionConfig(num_support=(2, 6), num_query=3)
    sampler = EpisodeDescriptionSampler(spec, Split.TEST, config, rng=0)
    seen = set()
    for _ in range(200):
        shots = {s for _, s, _ in sampler.sample_episode_description()}
        assert len(shots) == 1
        seen |= shots
    assert seen == {2, 3, 4, 5, 6}
    assert sampler.compute_chunk_sizes() == (50 * 6 + 50 * 3, 300, 150)


def test_zero_query_fixed():
    config = EpisodeDescriptionConfig(num_query=0)
    sampler = EpisodeDescriptionSampler(toy_spec(), Split.TRAIN, config, rng=0)
    for _ in range(50):
        description = sampler.sample_episode_description()
        assert all(q == 0 and s >= 1 for _, s, q in description)


def test_impossible_requests_raise():
    spec = toy_spec()
    with pytest.raises(ValueError, match="needs 15 images per class"):
        EpisodeDescriptionSampler(
            spec, Split.TRAIN, EpisodeDescriptionConfig(num_support=10, num_query=5),
            rng=0).sample_episode_description()
    with pytest.raises(ValueError, match="num_ways is 16"):
        EpisodeDescriptionSampler(spec, Split.TRAIN, EpisodeDescriptionConfig(num_ways=16),
                                  rng=0)
    with pytest.raises(ValueError, match="needs at least 11 images per class"):
        EpisodeDescriptionSampler(
            spec, Split.TRAIN, EpisodeDescriptionConfig(num_support=(1, 10)),
            rng=0).sample_episode_description()
    # 600 ways with variable shots cannot fit a 500-image support set.
    big = ds.DatasetSpecification(
        name="big", classes_per_split={Split.TRAIN: 600, Split.VALID: 0, Split.TEST: 0},
        images_per_class={i: 20 for i in range(600)}, class_names={i: str(i) for i in range(600)},
        path="/big")
    with pytest.raises(ValueError, match="smaller than the 600 ways"):
        EpisodeDescriptionSampler(big, Split.TRAIN, EpisodeDescriptionConfig(num_ways=600),
                                  rng=0).sample_episode_description()


def test_min_examples_in_class():
    spec = toy_spec()
    config = EpisodeDescriptionConfig(min_examples_in_class=20)
    sampler = EpisodeDescriptionSampler(spec, Split.TRAIN, config, rng=0)
    used = set()
    for _ in range(200):
        for rel, _, _ in sampler.sample_episode_description():
            assert spec.num_images(rel) >= 20
            used.add(rel)
    # Classes exactly at the threshold (20 images) are sampled too.
    assert {c for c in used if spec.num_images(c) == 20}
    with pytest.raises(ValueError, match="split VALID of toy has only 1 classes with at least 30"):
        EpisodeDescriptionSampler(spec, Split.VALID,
                                  EpisodeDescriptionConfig(min_examples_in_class=30), rng=0)


def test_large_fixed_episodes_get_large_chunks():
    spec = ds.DatasetSpecification(
        name="big", classes_per_split={Split.TRAIN: 100, Split.VALID: 0, Split.TEST: 0},
        images_per_class={i: 60 for i in range(100)}, class_names={i: str(i) for i in range(100)},
        path="/big")
    config = EpisodeDescriptionConfig(num_ways=60, num_support=20, num_query=30)
    sampler = EpisodeDescriptionSampler(spec, Split.TRAIN, config, rng=0)
    flush, support, query = sampler.compute_chunk_sizes()
    assert (support, query) == (1200, 1800) and flush == 3000 and support > 500
    assert len(sampler.sample_episode_description()) == 60


def test_default_chunk_sizes():
    sampler = EpisodeDescriptionSampler(toy_spec(), Split.TRAIN, EpisodeDescriptionConfig(),
                                        rng=0)
    assert sampler.compute_chunk_sizes() == (1000, 500, 500)


# --------------------------------------------------------------------------- hierarchies


def test_imagenet_dag_statistics(real_specs):
    spec, config = real_specs["ilsvrc_2012"], EpisodeDescriptionConfig()
    expected = {Split.TRAIN: (113, 16, 18.96), Split.VALID: (18, 4, 20.39),
                Split.TEST: (15, 1, 14.8)}
    for split, (eligible, above_50, mean_way) in expected.items():
        sampler = EpisodeDescriptionSampler(spec, split, config, use_dag_hierarchy=True, rng=0)
        nodes = sampler.span_leaves_rel
        assert len(nodes) == eligible
        assert sum(len(n) > 50 for n in nodes) == above_50
        assert all(5 <= len(n) <= sampling.MAX_SPANNING_LEAVES_ELIGIBLE for n in nodes)
        # Every leaf of the split is reachable.
        assert set().union(*map(set, nodes)) == set(range(sampler.num_classes))
        assert np.mean([min(len(n), 50) for n in nodes]) == pytest.approx(mean_way, abs=0.01)
        node_sets = [set(n) for n in nodes]
        for _ in range(200):
            classes = {c for c, _, _ in sampler.sample_episode_description()}
            assert 5 <= len(classes) <= 50
            assert any(classes <= node for node in node_sets)
    train = EpisodeDescriptionSampler(spec, Split.TRAIN, config, use_dag_hierarchy=True, rng=0)
    assert max(map(len, train.span_leaves_rel)) == 392


def test_imagenet_v2_dag_misses_six_leaves(real_specs):
    sampler = EpisodeDescriptionSampler(real_specs["ilsvrc_2012_v2"], Split.TRAIN,
                                        EpisodeDescriptionConfig(), use_dag_hierarchy=True,
                                        rng=0)
    reachable = set().union(*map(set, sampler.span_leaves_rel))
    missing = {real_specs["ilsvrc_2012_v2"].class_names[c] for c in range(1000)} - {
        real_specs["ilsvrc_2012_v2"].class_names[c] for c in reachable}
    assert missing == {"n03814906", "n03938244", "n04296562", "n04399382", "n11939491",
                       "n12057211"}


def test_omniglot_bilevel_episodes_stay_in_one_alphabet(real_specs):
    spec, config = real_specs["omniglot"], EpisodeDescriptionConfig()
    for split in Split:
        sampler = EpisodeDescriptionSampler(spec, split, config, use_bilevel_hierarchy=True,
                                            rng=11)
        offset = spec.get_classes(split).start
        alphabets = {s: set(spec.get_classes_of_superclass(s))
                     for s in spec.get_superclasses(split)}
        seen = set()
        for _ in range(300):
            classes = {offset + c for c, _, _ in sampler.sample_episode_description()}
            owners = [s for s, members in alphabets.items() if classes <= members]
            assert len(owners) == 1
            assert 5 <= len(classes) <= min(50, len(alphabets[owners[0]]))
            seen.add(owners[0])
        assert len(seen) > len(alphabets) // 2


def test_ignore_hierarchy_probability_mixes_uniform_episodes(real_specs):
    spec, config = real_specs["omniglot"], EpisodeDescriptionConfig()
    alphabets = [set(spec.get_classes_of_superclass(s)) for s in spec.get_superclasses("TRAIN")]

    def fraction_in_one_alphabet(probability):
        sampler = EpisodeDescriptionSampler(spec, Split.TRAIN, config,
                                            use_bilevel_hierarchy=True,
                                            ignore_hierarchy_probability=probability, rng=3)
        inside = 0
        for _ in range(400):
            classes = {c for c, _, _ in sampler.sample_episode_description()}
            inside += any(classes <= a for a in alphabets)
        return inside / 400

    assert fraction_in_one_alphabet(0.0) == 1.0
    assert fraction_in_one_alphabet(1.0) == 0.0  # 5+ random characters of 883: never one alphabet
    half = fraction_in_one_alphabet(0.5)
    assert abs(half - 0.5) < 5 * math.sqrt(0.25 / 400)


def test_hierarchy_preconditions(real_specs):
    config = EpisodeDescriptionConfig()
    with pytest.raises(ValueError, match="needs a BiLevelDatasetSpecification"):
        EpisodeDescriptionSampler(real_specs["aircraft"], Split.TRAIN, config,
                                  use_bilevel_hierarchy=True, rng=0)
    with pytest.raises(ValueError, match="needs a HierarchicalDatasetSpecification"):
        EpisodeDescriptionSampler(real_specs["omniglot"], Split.TRAIN, config,
                                  use_dag_hierarchy=True, rng=0)
    with pytest.raises(ValueError, match="incompatible with a fixed num_ways"):
        EpisodeDescriptionSampler(real_specs["ilsvrc_2012"], Split.TRAIN,
                                  EpisodeDescriptionConfig(num_ways=5), use_dag_hierarchy=True,
                                  rng=0)
    # The ignore flags switch the hierarchy off, so fixed ways work.
    sampler = EpisodeDescriptionSampler(
        real_specs["omniglot"], Split.TRAIN,
        EpisodeDescriptionConfig(num_ways=5, ignore_bilevel_ontology=True),
        use_bilevel_hierarchy=True, rng=0)
    assert not sampler.use_bilevel_hierarchy
    assert len(sampler.sample_episode_description()) == 5


# ------------------------------------------------------------- draw-for-draw reproduction


def reference_description(rng, spec, split, config, hierarchy, eligible_nodes=None,
                          superclasses=None, ignore_probability=0.0):
    """The draw sequence of docs/protocol.md §2.3–2.5 written out step by step."""
    classes = spec.get_classes(split)
    counts = np.array([spec.num_images(c) for c in classes])
    chosen = None
    keep = 1.0 - ignore_probability
    if hierarchy == "dag" and rng.random_sample() < keep:
        chosen = np.array(eligible_nodes[rng.randint(0, len(eligible_nodes))])
        if len(chosen) > 50:
            chosen = chosen[rng.permutation(len(chosen))[:50]]
    elif hierarchy == "bilevel" and rng.random_sample() < keep:
        s = superclasses[rng.randint(0, len(superclasses), size=1)[0]]
        m = spec.classes_per_superclass[s]
        k = rng.randint(5, min(50, m) + 1)
        chosen = spec.first_class_of_superclass(s) + rng.permutation(m)[:k] - classes.start
    if chosen is None:
        k = rng.randint(5, min(50, len(classes)) + 1)
        chosen = np.arange(len(classes))[rng.permutation(len(classes))[:k]]
    n = counts[chosen]
    q = min(10, int((n // 2).min()))
    remaining = n - q
    beta = rng.random_sample()
    total = min(int(sum(math.floor(beta * min(100, r) + 1) for r in remaining)), 500)
    w = rng.uniform(math.log(0.5), math.log(2.0), size=len(chosen))
    p = n * np.exp(w) / np.sum(n * np.exp(w))
    shots = [min(int(math.floor(pc * (total - len(chosen)))) + 1, int(r))
             for pc, r in zip(p, remaining)]
    return tuple((int(c), s, q) for c, s in zip(chosen, shots))


@pytest.mark.parametrize("name, split, probability", [
    ("ilsvrc_2012", Split.TRAIN, 0.0), ("ilsvrc_2012", Split.TRAIN, 0.5),
    ("ilsvrc_2012", Split.TEST, 0.0), ("omniglot", Split.TRAIN, 0.5),
    ("omniglot", Split.TEST, 0.0), ("fungi", Split.TRAIN, 0.0), ("mscoco", Split.VALID, 0.0),
])
def test_draw_for_draw_against_the_protocol(real_specs, rng_seed, name, split, probability):
    spec, config = real_specs[name], EpisodeDescriptionConfig()
    sampler = EpisodeDescriptionSampler(spec, split, config,
                                        ignore_hierarchy_probability=probability,
                                        rng=np.random.RandomState(rng_seed),
                                        **hierarchy_kind(name))
    hierarchy = ("dag" if name.startswith("ilsvrc") else "bilevel" if name == "omniglot"
                 else None)
    reference_rng = np.random.RandomState(rng_seed)
    for _ in range(150):
        expected = reference_description(
            reference_rng, spec, split, config, hierarchy,
            eligible_nodes=getattr(sampler, "span_leaves_rel", None),
            superclasses=getattr(sampler, "superclass_set", None),
            ignore_probability=probability)
        assert sampler.sample_episode_description() == expected
    # Both generators are in the same state afterwards: no hidden extra draws.
    assert sampler._rng.randint(0, 2**31) == reference_rng.randint(0, 2**31)


def test_seeded_samplers_repeat_and_differ(real_specs):
    spec, config = real_specs["omniglot"], EpisodeDescriptionConfig()

    def run(rng):
        sampler = EpisodeDescriptionSampler(spec, Split.TEST, config, use_bilevel_hierarchy=True,
                                            rng=rng)
        return [sampler.sample_episode_description() for _ in range(20)]

    assert run(1234) == run(np.random.RandomState(1234))
    assert run(1234) != run(1235)
    # Unseeded samplers draw their seed from the module RNG, as in the official code.
    sampling.RNG.seed(7)
    first = run(None)
    sampling.RNG.seed(7)
    assert run(None) == first
    assert run(None) != first


# Digests of the first 100 descriptions the unmodified official sampler (google-research/
# meta-dataset sampling.py, run on NumPy 1.23.5 where its ragged `choice` still works) produced
# for these seeds on the real specs: sha256 of json.dumps([[[class, shots, queries], ...], ...])
# (first 16 hex digits), plus the first three triples of the first episode for readability.
OFFICIAL_GOLDEN = [
    ("ilsvrc_2012", "TRAIN", 1234567, 0.5, {}, "cf43213396419272",
     [[324, 2, 10], [333, 1, 10], [421, 1, 10]]),
    ("ilsvrc_2012", "TEST", 42, 0.0, {}, "cec76906120e5f75",
     [[3, 30, 10], [25, 23, 10], [26, 13, 10]]),
    ("ilsvrc_2012_v2", "TRAIN", 1, 0.0, {}, "393d9459bed6c5a5",
     [[935, 21, 10], [936, 70, 10], [937, 25, 10]]),
    ("omniglot", "TEST", 0, 0.0, {}, "b05bdb1631dc600f", [[5, 4, 10], [2, 3, 10], [19, 5, 10]]),
    ("omniglot", "TRAIN", 1, 0.5, {}, "c913cf9c4a14651c",
     [[398, 7, 10], [407, 4, 10], [409, 4, 10]]),
    ("aircraft", "TRAIN", 0, 0.0, {}, "c659824258499bae",
     [[26, 8, 10], [27, 8, 10], [48, 11, 10]]),
    ("quickdraw", "VALID", 2147483647, 0.0, {}, "3e542e0c70759fb2",
     [[44, 4, 10], [28, 3, 10], [4, 2, 10]]),
    ("mscoco", "TEST", 42, 0.0, {}, "b495647f9a7d496a", [[25, 5, 10], [13, 19, 10], [8, 19, 10]]),
    ("cu_birds", "TEST", 1, 0.0, dict(num_support=(1, 10), num_query=5), "877a94737aa9fa1e",
     [[27, 10, 5], [3, 10, 5], [19, 10, 5]]),
    ("dtd", "VALID", 0, 0.0, dict(num_ways=5, num_support=5, num_query=15), "0b35188b0bee4045",
     [[6, 5, 15], [2, 5, 15], [1, 5, 15]]),
    ("fungi", "TRAIN", 42, 0.0, dict(min_examples_in_class=50), "d226645d5e1a5d6a",
     [[115, 8, 10], [131, 7, 10], [68, 9, 10]]),
]


@pytest.mark.parametrize("name, split, seed, probability, overrides, digest, first",
                         OFFICIAL_GOLDEN)
def test_matches_outputs_of_the_official_sampler(real_specs, name, split, seed, probability,
                                                 overrides, digest, first):
    import hashlib
    import json

    flat = bool(overrides) and "min_examples_in_class" not in overrides
    config = EpisodeDescriptionConfig(ignore_dag_ontology=flat, ignore_bilevel_ontology=flat,
                                      **overrides)
    sampler = EpisodeDescriptionSampler(real_specs[name], split, config,
                                        ignore_hierarchy_probability=probability,
                                        rng=np.random.RandomState(seed), **hierarchy_kind(name))
    episodes = [[list(t) for t in sampler.sample_episode_description()] for _ in range(100)]
    assert episodes[0][:3] == first
    assert hashlib.sha256(json.dumps(episodes).encode()).hexdigest()[:16] == digest
