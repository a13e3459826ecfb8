"""Results are set beside published rows of their own training setting only."""

import pytest

from ctx_tf.data import facts
from ctx_tf.data import sampling
from ctx_tf.evaluation import comparability
from ctx_tf.evaluation import comparison
from ctx_tf.evaluation import evaluator
from ctx_tf.evaluation import leaderboard
from ctx_tf.evaluation import protocol
from ctx_tf.evaluation import results as results_lib

OFFICIAL_CONFIG = protocol.config_as_dict(
    protocol.evaluation_episode_config(sampling.EpisodeDescriptionConfig())[0])
MD_V1_ALL = ["ilsvrc_2012", "aircraft", "cu_birds", "omniglot", "quickdraw", "vgg_flower",
             "dtd", "fungi"]


def official_results(train_datasets, floor_only=False):
    """600 official-protocol TEST episodes of the official omniglot, from a model trained on
    `train_datasets` (None: unrecorded): comparable in every other respect."""
    episodes = [{"episode": i, "way": 5, "num_support": 25, "shots_min": 5, "shots_max": 5,
                 "num_query": 50, "accuracy": 0.8 + 0.1 * (i % 2),
                 "fingerprint": f"{i:016x}"} for i in range(600)]
    check = comparability.check_source("omniglot", facts.dataset_spec("omniglot"), "test")
    return {
        "format": results_lib.FORMAT,
        "model": evaluator.model_section("mine", checkpoint="/run/ckpt-9",
                                         train_datasets=train_datasets,
                                         floor_only=floor_only),
        "protocol": {"split": "TEST", "num_episodes": 600, "seed": 0, "image_size": 224,
                     "episode_config": OFFICIAL_CONFIG},
        "sources": {"omniglot": results_lib.source_result(
            episodes, split="TEST", comparability=check.to_json())},
    }


@pytest.mark.parametrize("datasets, setting", [
    (["ilsvrc_2012"], leaderboard.IMAGENET_ONLY),
    (["ilsvrc_2012_v2"], leaderboard.IMAGENET_ONLY),
    ([], leaderboard.IMAGENET_ONLY),  # trained on nothing: the raw-pixel floor
    (list(reversed(MD_V1_ALL)), leaderboard.ALL_DATASETS),
    (["ilsvrc_2012_v2", "aircraft", "cu_birds", "omniglot", "quickdraw", "dtd", "fungi"],
     leaderboard.ALL_DATASETS),
    (["omniglot"], None), (["mini_imagenet"], None), (["ilsvrc_2012", "omniglot"], None),
])
def test_the_training_setting_of_a_run(datasets, setting):
    assert leaderboard.training_setting(datasets) == setting


def test_an_imagenet_only_run_is_compared_with_the_published_rows():
    results = official_results(["ilsvrc_2012"])
    verdict = comparison.comparison_verdicts(results)["omniglot"]
    assert verdict["comparable"] and verdict["published_rows"] == ["CTX"]
    assert "CTX (published)" in results_lib.results_markdown(results)


@pytest.mark.parametrize("datasets, note", [
    (MD_V1_ALL, "no such row is published for training on all datasets, the model's "
                "training setting"),
    (["omniglot"], "the model was trained on omniglot, and the leaderboard publishes rows "
                   "trained on ImageNet only or on all datasets"),
    (None, "the model's training datasets are not recorded"),
])
def test_a_run_of_another_setting_is_not_compared_and_says_why(datasets, note):
    results = official_results(datasets)
    verdict = comparison.comparison_verdicts(results)["omniglot"]
    assert not verdict["comparable"] and verdict["published_rows"] == []
    assert verdict["withheld"].startswith("omniglot: not compared with the published CTX: ")
    assert note in verdict["withheld"]
    report = results_lib.results_markdown(results)
    assert "CTX (published)" not in report and "Ranks follow" not in report
    assert f"Not ranked: {verdict['withheld'][len('omniglot: '):]}." in report


def test_the_floor_alone_stands_beside_the_imagenet_only_rows():
    results = official_results(None, floor_only=True)
    assert results["model"]["training_setting"] == leaderboard.IMAGENET_ONLY
    assert comparison.comparison_verdicts(results)["omniglot"]["comparable"]


def test_results_without_a_recorded_setting_read_as_imagenet_only():
    results = official_results(["ilsvrc_2012"])
    del results["model"]["training_setting"]  # written before the field existed
    assert comparison.setting_of(results) == leaderboard.IMAGENET_ONLY


def test_unknown_row_names_fail_whatever_the_setting():
    leaderboard.check_row_names(["CTX", "protonet (large)"])
    with pytest.raises(leaderboard.UnknownRowError, match="no published row 'CTY'"):
        leaderboard.check_row_names(["CTY"])
    assert leaderboard.published_rows(["CTX"], leaderboard.ALL_DATASETS) == ([], ["CTX"])
