"""The evaluation protocol on tiny records: episode config, seeding, per-episode records."""

import io
import itertools

import numpy as np
import pytest

from ctx_tf.data import sampling
from ctx_tf.data.dataset_spec import Split
from ctx_tf.data.episode import Episode
from ctx_tf.evaluation import comparison
from ctx_tf.evaluation import protocol
from ctx_tf.evaluation import results as results_lib
from ctx_tf.evaluation import sources as sources_lib
from ctx_tf.progress import Progress
from tests.conftest import shared_path
from tests.data.helpers import write_tiny_source
from tests.evaluation.helpers import TinyPrototypeLearner


@pytest.fixture(scope="module")
def records_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("records")
    write_tiny_source(root, "tiny")
    write_tiny_source(root, "other", seed=1)
    return str(root)


def _setup(records_root, sources=("tiny",), seed=5, num_episodes=4, split=Split.TEST):
    return protocol.EvaluationSetup(records_root=records_root, sources=tuple(sources),
                                    split=split, num_episodes=num_episodes, seed=seed,
                                    image_size=12)


@pytest.mark.compat
def test_evaluation_config_forces_protocol_values():
    config = sampling.EpisodeDescriptionConfig(ignore_hierarchy_probability=0.5,
                                               simclr_episode_fraction=0.5)
    evaluated, overrides = protocol.evaluation_episode_config(config)
    assert evaluated.ignore_hierarchy_probability == 0.0
    assert evaluated.simclr_episode_fraction == 0.0
    assert overrides == {"ignore_hierarchy_probability": (0.5, 0.0),
                         "simclr_episode_fraction": (0.5, 0.0)}
    assert config.simclr_episode_fraction == 0.5  # the caller's config is untouched
    assert protocol.is_official_config(evaluated)
    assert not protocol.is_official_config(sampling.EpisodeDescriptionConfig(
        num_ways=5, num_support=1, num_query=15))


def test_sampling_per_source_and_source_seeds():
    assert protocol.sampling_name("ilsvrc_2012") == "dag"
    assert protocol.sampling_name("ilsvrc_2012_v2") == "dag"
    assert protocol.sampling_name("omniglot") == "bilevel"
    assert protocol.sampling_name("aircraft") == "uniform"
    assert protocol.source_seed(None, "aircraft") is None
    assert protocol.source_seed(3, "aircraft") == protocol.source_seed(3, "aircraft")
    assert protocol.source_seed(3, "aircraft") != protocol.source_seed(3, "omniglot")
    assert protocol.source_seed(3, "aircraft") != protocol.source_seed(4, "aircraft")
    with pytest.raises(ValueError):
        protocol.source_seed(-1, "aircraft")


def test_episode_record_by_hand():
    episode = Episode(
        support_images=None, support_labels=np.array([0, 0, 0, 1, 2, 2]),
        support_class_ids=np.array([7, 7, 7, 3, 9, 9]), query_images=None,
        query_labels=np.array([0, 1, 2, 2]), query_class_ids=np.array([7, 3, 9, 9]))
    logits = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]], np.float32)
    record = results_lib.episode_record(3, episode, logits)
    assert record == {"episode": 3, "way": 3, "num_support": 6, "shots_min": 1, "shots_max": 3,
                      "num_query": 4, "accuracy": 0.75,
                      "fingerprint": record["fingerprint"]}
    assert len(record["fingerprint"]) == 16


@pytest.fixture(scope="module")
def runs(records_root):
    """Evaluations sharing one compiled predict function (one trace for all)."""
    learner = TinyPrototypeLearner()
    predict_fn = protocol.make_predict_fn(learner)

    def run(sources=("tiny",), seed=5):
        return protocol.evaluate(learner, _setup(records_root, sources, seed),
                                 log=lambda *_: None, predict_fn=predict_fn)

    return {"first": run(), "again": run(), "other_seed": run(seed=6),
            "two_sources": run(("other", "tiny"))}


def test_seeded_evaluation_repeats_exactly_and_seeds_differ(runs):
    eps, eps_again, eps_other = (runs[k]["sources"]["tiny"]["episodes"]
                                 for k in ("first", "again", "other_seed"))
    assert eps == eps_again  # classes, shots, images (digest) and accuracies
    assert [e["fingerprint"] for e in eps] != [e["fingerprint"] for e in eps_other]
    summary = runs["first"]["sources"]["tiny"]
    assert summary["split"] == "TEST" and summary["num_classes"] == 6
    assert summary["sampling"] == "uniform" and summary["num_episodes"] == 4
    accuracies = [e["accuracy"] for e in eps]
    assert summary["mean"] == pytest.approx(np.mean(accuracies))
    assert summary["ci95"] == pytest.approx(1.96 * np.std(accuracies) / 2.0)
    for e in eps:
        assert 5 <= e["way"] <= 6 and e["shots_min"] >= 1 and e["num_query"] >= e["way"]
    assert runs["first"]["protocol"]["split"] == "TEST"
    assert runs["first"]["protocol"]["seed"] == 5
    assert runs["first"]["protocol"]["official"] is False  # 4 episodes, not 600


def test_a_source_gets_the_same_episodes_whatever_else_is_evaluated(runs):
    both = runs["two_sources"]
    assert both["sources"]["tiny"]["episodes"] == runs["first"]["sources"]["tiny"]["episodes"]
    assert list(both["sources"]) == ["other", "tiny"]


def test_evaluation_runs_the_learner_in_inference_mode(records_root):
    learner = TinyPrototypeLearner()
    protocol.evaluate(learner, _setup(records_root, num_episodes=2), log=lambda *_: None)
    # Batch-norm moving statistics are untouched by evaluation.
    np.testing.assert_array_equal(learner.bn.moving_mean.numpy(), 0.0)
    np.testing.assert_array_equal(learner.bn.moving_variance.numpy(), 1.0)


def test_progress_lines(records_root):
    stream = io.StringIO()
    protocol.evaluate(TinyPrototypeLearner(), _setup(records_root, num_episodes=3),
                      progress=Progress(stream, every_seconds=0.0),
                      log=lambda *_: None)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[-1].startswith("[tiny] 3/3 episodes") and "episodes/s" in lines[-1]
    assert "ETA 0:00:00" in lines[-1]



@pytest.mark.slow
def test_official_omniglot_records(tmp_path):
    root = shared_path("data", "official_records")
    if not (root / "omniglot" / "dataset_spec.json").exists():
        pytest.skip(f"no official omniglot records under {root}")
    result = protocol.evaluate(
        TinyPrototypeLearner(), protocol.EvaluationSetup(
            records_root=str(root), sources=("omniglot",), num_episodes=1, seed=0,
            image_size=28), log=lambda *_: None)
    entry = result["sources"]["omniglot"]
    assert entry["sampling"] == "bilevel" and entry["num_classes"] == 659
    assert entry["num_episodes"] == 1


def test_records_and_results_on_another_filesystem(records_root):
    """Records read from, and results written to, a non-local tf.io.gfile filesystem."""
    import tensorflow as tf

    from ctx_tf.evaluation import results as results_lib

    remote = "ram://eval_test/records"
    tf.io.gfile.makedirs(f"{remote}/tiny")
    for name in tf.io.gfile.listdir(f"{records_root}/tiny"):
        tf.io.gfile.copy(f"{records_root}/tiny/{name}", f"{remote}/tiny/{name}", overwrite=True)
    result = protocol.evaluate(TinyPrototypeLearner(), _setup(remote, num_episodes=2),
                               log=lambda *_: None)
    result["model"] = {"name": "tiny"}
    paths = results_lib.write_results("ram://eval_test/out", result)
    assert paths["results.json"] == "ram://eval_test/out/results.json"
    assert results_lib.load_results("ram://eval_test/out") == comparison.with_comparisons(result)
    assert result["sources"]["tiny"]["comparability"]["official"] is False
    assert tf.io.gfile.GFile(paths["results.png"], "rb").read()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(tf.io.gfile.listdir("ram://eval_test/out")) == [
        "episodes.csv", "results.json", "results.md", "results.png"]


def test_episodes_do_not_depend_on_the_callers_global_seed(records_root):
    """Per-class shuffles are built lazily, on first use; whatever global TensorFlow seed the
    caller sets between building the pipeline and reading it (training does), the episodes'
    images stay the ones of the protocol seed."""
    import hashlib

    import tensorflow as tf

    spec = sources_lib.load_sources(records_root, ["tiny"], Split.TEST)["tiny"]
    setup = _setup(records_root)

    def digests(global_seed_while_reading):
        episodes = protocol.source_episodes(setup, spec)
        if global_seed_while_reading is not None:
            tf.random.set_seed(global_seed_while_reading)
        try:
            return [hashlib.sha256(np.asarray(episode.support_images).tobytes()).hexdigest()
                    for (episode, _), _ in zip(episodes, range(3))]
        finally:
            tf.random.set_seed(None)

    assert digests(None) == digests(123) == digests(4567)


def test_the_multisource_pipeline_draws_every_source_and_scores_one_entry(records_root):
    """The official validation of several sources: one pipeline, each episode's source drawn
    at random, accuracy averaged over all episodes."""
    setup = _setup(records_root, sources=("tiny", "other"), num_episodes=12)
    setup.multisource = True
    specs = sources_lib.load_sources(records_root, ["tiny", "other"], Split.TEST)
    drawn = [int(source_id) for _, source_id in itertools.islice(
        protocol.multisource_episodes(setup, list(specs.values())), 12)]
    assert set(drawn) == {0, 1}  # both sources, in one stream
    again = [int(source_id) for _, source_id in itertools.islice(
        protocol.multisource_episodes(setup, list(specs.values())), 12)]
    assert again == drawn  # seeded by the protocol seed
    results = protocol.evaluate(TinyPrototypeLearner(), setup, log=lambda *_: None)
    assert list(results["sources"]) == ["multisource(tiny,other)"]
    entry = results["sources"]["multisource(tiny,other)"]
    assert entry["num_episodes"] == 12 and entry["sampling"] == "multisource"
    assert entry["num_classes"] == 12  # the TEST classes of both sources
    assert entry["mean"] == pytest.approx(np.mean([e["accuracy"] for e in entry["episodes"]]))
