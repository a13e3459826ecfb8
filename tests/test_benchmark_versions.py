"""Meta-Dataset v1 and v2: the setups' gin files, the version rules, `python -m ctx_tf.evaluate
--benchmark`'s defaults and refusals, results that name their version, and the classic
mini-ImageNet protocol (`setups/mini_imagenet.gin`) trained and tested end to end."""

import json

import gin
import pytest

from ctx_tf import cli
from ctx_tf import evaluate
from ctx_tf import train
from ctx_tf.data import sampling
from ctx_tf.data.writing import synthetic
from ctx_tf.evaluation import benchmark_versions as versions
from ctx_tf.evaluation import comparison
from ctx_tf.evaluation import leaderboard
from ctx_tf.evaluation import results as results_lib
from ctx_tf.training import episodes as episodes_lib
from tests.conftest import REPO_ROOT

GIN = REPO_ROOT / "gin"
V1, V2 = versions.VERSIONS[versions.MD_V1], versions.VERSIONS[versions.MD_V2]


@pytest.fixture
def parsed(clean_gin):
    """Parses gin files of the repository (`parsed("ctx_v2.gin")`), clearing gin after."""

    def parse(*names, bindings=()):
        cli.parse_gin([str(GIN / name) for name in names], list(bindings))

    return parse


def episode_configs():
    with gin.config_scope("train"):
        train_config = gin.get_configurable(sampling.EpisodeDescriptionConfig)()
    return train_config, gin.get_configurable(sampling.EpisodeDescriptionConfig)()


# ------------------------------------------------------------------------------ gin files


@pytest.mark.compat
@pytest.mark.parametrize("setup, train_sources, valid_sources", [
    ("imagenet.gin", ["ilsvrc_2012"], ["ilsvrc_2012"]),
    ("all.gin", list(V1.train_sources), ["ilsvrc_2012"]),
    ("imagenet_v2.gin", ["ilsvrc_2012_v2"], list(V2.valid_sources)),
    ("all_v2.gin", list(V2.train_sources), list(V2.valid_sources)),
])
def test_setups_bind_the_official_source_lists(parsed, setup, train_sources, valid_sources):
    parsed(f"setups/{setup}")
    assert episodes_lib.benchmark() == (train_sources, valid_sources)
    version = versions.of_training(train_sources)
    assert version == (versions.MD_V2 if setup.endswith("_v2.gin") else versions.MD_V1)
    # The official v2 validation list: the v2 test sources with VALID classes (traffic_sign
    # has none), ILSVRC and VGG Flower held out.
    versions.check_evaluation(version, valid_sources)
    train_config, eval_config = episode_configs()
    assert sampling.EpisodeDescriptionConfig().num_ways is None
    assert train_config.num_ways is None and eval_config.max_support_set_size == 500


def config_lines(parse, name):
    parse(name)
    lines = set(gin.config_str().splitlines())
    gin.clear_config()
    return lines


@pytest.mark.compat
@pytest.mark.parametrize("v1, v2", [("ctx.gin", "ctx_v2.gin"),
                                    ("ctx_simclr.gin", "ctx_simclr_v2.gin")])
def test_v2_ctx_configs_differ_from_v1_only_in_the_setup(parsed, v1, v2):
    ours, theirs = config_lines(parsed, v2), config_lines(parsed, v1)
    changed = sorted(line.split(" = ")[0] for line in ours ^ theirs if " = " in line)
    assert changed == ["benchmark.eval_datasets", "benchmark.eval_datasets",
                       "benchmark.train_datasets", "benchmark.train_datasets",
                       "final_test.enabled"], ours ^ theirs
    parsed(v2)
    assert episodes_lib.benchmark() == (["ilsvrc_2012_v2"], list(V2.valid_sources))
    assert gin.query_parameter("final_test.enabled") is False  # eight test sources: evaluate


@pytest.mark.compat
def test_mini_imagenet_setup_is_five_way_five_shot(parsed):
    parsed("setups/mini_imagenet.gin")
    assert episodes_lib.benchmark() == (["mini_imagenet"], ["mini_imagenet"])
    assert gin.query_parameter("DataConfig.image_height") == 84
    for config in episode_configs():
        assert (config.num_ways, config.num_support, config.num_query) == (5, 5, 15)


# ---------------------------------------------------------------------------- the rules


def test_a_run_trains_for_the_version_of_its_ilsvrc_source():
    assert versions.of_training(V1.train_sources) == versions.MD_V1
    assert versions.of_training(V2.train_sources) == versions.MD_V2
    assert versions.of_training(["omniglot"]) is None
    assert versions.of_training([]) is None
    with pytest.raises(versions.BenchmarkError,
                       match=r"mixes md_v2's ilsvrc_2012_v2 with ilsvrc_2012, vgg_flower"):
        versions.of_training(["ilsvrc_2012_v2", "ilsvrc_2012", "vgg_flower"])


def test_held_out_sources_are_named_with_the_reason():
    for source in ("ilsvrc_2012", "ilsvrc_2012_v2", "vgg_flower"):
        with pytest.raises(versions.BenchmarkError, match=rf"names {source}, which md_v2 holds "
                                                          "out of evaluation"):
            versions.check_evaluation("md_v2", ["omniglot", source])
    with pytest.raises(versions.BenchmarkError, match="ilsvrc_2012_v2 is md_v2's training"):
        versions.check_evaluation("md_v1", ["ilsvrc_2012_v2"])
    versions.check_evaluation("md_v1", V1.test_sources)
    versions.check_evaluation("md_v2", V2.test_sources)
    assert set(V2.test_sources) == set(V1.test_sources) - {"ilsvrc_2012", "vgg_flower"}
    assert V1.test_sources == leaderboard.TEST_SOURCES
    with pytest.raises(versions.BenchmarkError, match="unknown benchmark version 'md_v3'"):
        versions.get("md_v3")


def test_every_published_row_is_an_md_v1_row():
    assert {row.benchmark for row in leaderboard.PUBLISHED} == {versions.MD_V1}


# ------------------------------------------------------------ evaluate: defaults, refusals


@pytest.mark.parametrize("manifest, configs, requested, expected", [
    # A v2 run: its version's eight test sources.
    (dict(train_datasets=list(V2.train_sources), eval_datasets=list(V2.valid_sources)), (),
     None, ("md_v2", V2.test_sources)),
    # The manifest's own record wins over its train list.
    (dict(benchmark="md_v1", train_datasets=["ilsvrc_2012"], eval_datasets=["ilsvrc_2012"]),
     (), None, ("md_v1", V1.test_sources)),
    # A run on neither ILSVRC source (the demo): its own eval sources, labelled md_v1.
    (dict(benchmark=None, train_datasets=["demo_glyphs"], eval_datasets=["demo_glyphs"]), (),
     None, ("md_v1", ("demo_glyphs",))),
    # ... unless a version is asked for.
    (dict(benchmark=None, train_datasets=["demo_glyphs"], eval_datasets=["demo_glyphs"]), (),
     "md_v2", ("md_v2", V2.test_sources)),
    # No run: the gin configuration's training sources.
    (None, ("ctx_v2.gin",), None, ("md_v2", V2.test_sources)),
    (None, ("ctx.gin",), None, ("md_v1", V1.test_sources)),
    # Nothing known: md_v1.
    (None, (), None, ("md_v1", V1.test_sources)),
])
def test_evaluate_picks_the_runs_version_and_its_test_sources(parsed, manifest, configs,
                                                             requested, expected):
    parsed(*configs)
    version, sources, _ = evaluate.resolve_benchmark(requested, None, manifest, "runs/x")
    assert (version.name, tuple(sources)) == expected


@pytest.mark.parametrize("configs, requested, datasets, message", [
    # A v2 source list with a v1 run, either way.
    (("ctx.gin",), "md_v2", None,
     "--benchmark=md_v2, but the gin configuration (benchmark.train_datasets = 'ilsvrc_2012') "
     "trained for md_v1 (on ilsvrc_2012), not for md_v2"),
    (("ctx.gin",), None, ["omniglot", "ilsvrc_2012_v2"],
     "--datasets names ilsvrc_2012_v2, which md_v1 holds out of evaluation"),
    (("ctx_v2.gin",), None, ["ilsvrc_2012", "omniglot"],
     "--datasets names ilsvrc_2012, which md_v2 holds out of evaluation (md_v2 trains on all "
     "1000 ILSVRC classes"),
    ((), "md_v2", ["vgg_flower"],
     "--datasets names vgg_flower, which md_v2 holds out of evaluation (md_v2 leaves VGG "
     "Flower to VTAB"),
])
def test_evaluate_refuses_sources_of_another_version_before_writing(
        parsed, tmp_path, configs, requested, datasets, message):
    out = tmp_path / "out"
    with pytest.raises(versions.BenchmarkError) as error:
        evaluate.run_evaluation(
            gin_config=[str(GIN / c) for c in configs], checkpoint="x", floor_only=not configs,
            records_root_dir=str(tmp_path), datasets=datasets, output_dir=str(out),
            benchmark=requested, log=lambda m: None)
    assert message in str(error.value)
    assert not out.exists()


def test_train_refuses_validation_on_a_source_its_version_holds_out(parsed, tmp_path):
    with pytest.raises(versions.BenchmarkError,
                       match="benchmark.eval_datasets names ilsvrc_2012, which md_v2 holds out"):
        train.run([str(GIN / "ctx_v2.gin")],
                  ["benchmark.eval_datasets = 'omniglot,ilsvrc_2012'"],
                  records_root_dir=str(tmp_path), train_checkpoint_dir=str(tmp_path / "ckpt"),
                  summary_dir=str(tmp_path / "summaries"), print_fn=lambda m: None)
    assert not any(tmp_path.iterdir())


def test_md_v2_results_name_their_version_and_withhold_the_v1_rows():
    episodes = [dict(episode=i, way=5, num_support=10, shots_min=2, shots_max=2, num_query=10,
                     accuracy=0.5, fingerprint="f") for i in range(600)]
    results = {"format": results_lib.FORMAT,
               "protocol": dict(benchmark="md_v2", split="TEST", num_episodes=600,
                                image_size=224, episode_config=None),
               "sources": {"omniglot": results_lib.source_result(episodes)}}
    verdict = comparison.comparison_verdicts(results)["omniglot"]
    assert not verdict["comparable"]
    assert verdict["withheld"] == ("omniglot: an md_v2 result; the published CTX row is md_v1 "
                                   "and no md_v2 CTX row is published")
    report = results_lib.results_markdown(results)
    assert "- benchmark: Meta-Dataset v2 (`md_v2`)" in report
    assert "| CTX (published) | – | withheld |" in report
    assert f"- omniglot: {verdict['withheld'][len('omniglot: '):]}" in report
    # Without a recorded version, results are md_v1 (older results files).
    del results["protocol"]["benchmark"]
    assert comparison.benchmark_of(results) == "md_v1"
    assert "an md_v2 result" not in comparison.comparison_verdicts(results)["omniglot"][
        "withheld"]


# ------------------------------------------------------------------ mini-ImageNet, classic

TINY_MINI_IMAGENET = """
include 'setups/mini_imagenet.gin'
include 'setups/learner_config.gin'
Trainer.train_learner_class = @PrototypicalNetworkLearner
Trainer.eval_learner_class = @PrototypicalNetworkLearner
Learner.embedding_fn = @four_layer_convnet
DataConfig.image_height = 16
DataConfig.shuffle_buffer_size = 4
DataConfig.num_prefetch = 0
Trainer.num_updates = 2
Trainer.log_every = 1
Trainer.validate_every = 2
Trainer.checkpoint_every = 2
Trainer.num_eval_episodes = 1
final_test.num_episodes = 2
"""


def test_mini_imagenet_trains_and_tests_on_five_way_five_shot_episodes(parsed, tmp_path):
    # The mini-ImageNet class split (64 / 16 / 20), 20 images a class: 5 support + 15 query.
    synthetic.write_flat_source(tmp_path / "records", "mini_imagenet", (64, 16, 20), 20,
                                image_size=8)
    gin_file = tmp_path / "tiny_mini_imagenet.gin"
    gin_file.write_text(TINY_MINI_IMAGENET)
    ckpt = tmp_path / "run" / "ckpt"
    lines = []
    train.run([str(gin_file)], [], records_root_dir=str(tmp_path / "records"),
              train_checkpoint_dir=str(ckpt), summary_dir=str(tmp_path / "run" / "summaries"),
              print_fn=lines.append)
    assert not any(line.startswith("Benchmark:") for line in lines)  # not a Meta-Dataset run
    final = json.loads((ckpt / "final_test" / "results.json").read_text())
    evaluated = evaluate.run_evaluation(checkpoint="best", train_checkpoint_dir=str(ckpt),
                                        num_episodes=2, log=lines.append)
    for results in (final, evaluated):
        assert list(results["sources"]) == ["mini_imagenet"]  # the run's own test source
        entry = results["sources"]["mini_imagenet"]
        assert [(e["way"], e["shots_min"], e["shots_max"], e["num_query"])
                for e in entry["episodes"]] == [(5, 5, 5, 75)] * 2
        assert entry["comparability"]["withheld"] == (
            "mini_imagenet: not a Meta-Dataset source")
    assert json.loads((ckpt / "valid" / "results.json").read_text())["sources"][
        "mini_imagenet"]["episodes"][0]["way"] == 5
