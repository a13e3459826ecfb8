"""One path for each job: a learner the trainer has never heard of trains, validates and
evaluates as itself (one device and two replicas), and the final test of a run is what
`python -m ctx_tf.evaluate` reproduces episode for episode."""

import json
import os
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from ctx_tf import evaluate
from ctx_tf import train
from tests.data.helpers import write_tiny_source
from tests.scripts import TWO_CPUS, run_script, script_result
from tests.training.helpers import ScaledCosineLearner, cosine_episodes, cosine_trainer

TWO_REPLICAS = TWO_CPUS + textwrap.dedent("""
    import json, pathlib, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from tests.training.helpers import cosine_trainer, make_episode
    tmp = pathlib.Path(sys.argv[2])
    out = {}
    for name, strategy in (("one", tf.distribute.get_strategy()),
                           ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
        t = cosine_trainer(tmp / name, strategy=strategy)
        best = t.train()
        episode = make_episode(np.random.RandomState(5), way=3, shot=3, query=3, size=8)
        out[name] = dict(
            replicas=t.strategy.num_replicas_in_sync, best=best["valid_accuracy"],
            learner=type(t.learner).__name__, calls=t.learner.calls,
            weights=[v.numpy().tolist() for v in t.learner.variables],
            logits=np.asarray(t.predict_fn(episode)[0]).tolist(),
            test=[e["accuracy"] for e in t.validation.run(
                t.predict_fn, "test")["sources"]["episodes"]["episodes"]])
    print("RESULT " + json.dumps(out))
""")


def test_a_new_learner_trains_validates_and_evaluates_as_itself(tmp_path, clean_gin):
    t = cosine_trainer(tmp_path)
    best = t.train()
    assert type(t.learner) is ScaledCosineLearner and t.learner.calls > 0
    episode = next(cosine_episodes(11))
    own = t.learner.episode_logits(episode, training=False)
    np.testing.assert_allclose(np.asarray(t.predict_fn(episode)[0]), own.numpy(),
                               rtol=1e-5, atol=1e-6)
    assert float(t.learner.temperature.numpy()) != 3.0  # its own variables were trained
    results = t.validation.run(t.predict_fn, "test", num_episodes=4)
    assert results["sources"]["episodes"]["num_episodes"] == 4
    assert 0.0 <= best["valid_accuracy"] <= 1.0 and best["step"] in (0, 2, 4)


@pytest.mark.slow  # a subprocess with two logical CPUs, two trainings: ~25 s
def test_a_new_learner_trains_the_same_under_two_replicas(tmp_path):
    out = script_result(run_script(TWO_REPLICAS, tmp_path), timeout=300)
    one, two = out["one"], out["two"]
    assert (one["replicas"], two["replicas"]) == (1, 2)
    assert one["learner"] == two["learner"] == "ScaledCosineLearner" and two["calls"] > 0
    for a, b in zip(one["weights"], two["weights"]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(two["logits"], one["logits"], rtol=1e-4, atol=1e-5)
    assert two["best"] == pytest.approx(one["best"]) and two["test"] == one["test"]


FINAL_TEST_GIN = """
Trainer.train_learner_class = @CrossTransformerLearner
Trainer.eval_learner_class = @CrossTransformerLearner
Trainer.data_config = @DataConfig()
Trainer.train_episode_config = @train/EpisodeDescriptionConfig()
Trainer.eval_episode_config = @EpisodeDescriptionConfig()
benchmark.train_datasets = 'tiny'
benchmark.eval_datasets = 'tiny'
Learner.embedding_fn = @four_layer_convnet
CrossTransformerLearner.query_dim = 8
CrossTransformerLearner.val_dim = 8
DataConfig.image_height = 16
DataConfig.shuffle_buffer_size = 20
EpisodeDescriptionConfig.max_ways_upper_bound = 5
EpisodeDescriptionConfig.max_num_query = 3
EpisodeDescriptionConfig.max_support_set_size = 20
Trainer.num_updates = 2
Trainer.learning_rate = 0.01
Trainer.validate_every = 2
Trainer.checkpoint_every = 2
Trainer.log_every = 1
Trainer.num_eval_episodes = 2
final_test.num_episodes = 5
final_test.seed = 4321
"""


def test_final_test_is_reproduced_by_the_evaluate_cli(tmp_path, clean_gin):
    write_tiny_source(tmp_path / "records", "tiny", size=16, splits=(6, 5, 6))
    records = str(tmp_path / "records")
    gin_file = tmp_path / "tiny.gin"
    gin_file.write_text(FINAL_TEST_GIN)
    run_dir = tmp_path / "run"
    final = train.run([str(gin_file)], [], records_root_dir=records,
                      train_checkpoint_dir=str(run_dir / "ckpt"),
                      summary_dir=str(run_dir / "summaries"), print_fn=lambda *_: None)
    saved = json.loads((run_dir / "ckpt" / "final_test" / "results.json").read_text())
    assert saved["protocol"]["seed"] == 4321 and saved["protocol"]["split"] == "TEST"
    assert sorted(os.listdir(run_dir / "ckpt" / "final_test")) == [
        "episodes.csv", "results.json", "results.md", "results.png",
        "training_curves.png"]
    curves_png = (run_dir / "ckpt" / "final_test" / "training_curves.png").read_bytes()
    assert tf.io.decode_png(curves_png).shape[:2] == (800, 1200)  # curves.DEFAULT_SIZE
    again = evaluate.run_evaluation(
        checkpoint="best", train_checkpoint_dir=str(run_dir / "ckpt"),
        records_root_dir=records, datasets=["tiny"], split="test",
        num_episodes=saved["protocol"]["num_episodes"], seed=saved["protocol"]["seed"],
        output_dir=str(tmp_path / "eval"), log=lambda *_: None)
    ours, theirs = final["sources"]["tiny"]["episodes"], again["sources"]["tiny"]["episodes"]
    assert len(ours) == len(theirs) == 5
    for a, b in zip(ours, theirs):
        assert (a["fingerprint"], a["image_digest"]) == (b["fingerprint"], b["image_digest"])
        assert a["accuracy"] == b["accuracy"], (a, b)
    assert again["model"]["checkpoint"] == final["model"]["checkpoint"]
