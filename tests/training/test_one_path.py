"""One path for each job: a learner the trainer has never heard of trains, validates and
evaluates as itself (one device and two replicas), and the final test of a run is what
`python -m ctx_tf.evaluate` reproduces episode for episode."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import gin
import numpy as np
import pytest
import tensorflow as tf

from ctx_tf import learners
from ctx_tf.keras import keras
from ctx_tf.training import loop
from tests.training.test_distribute import TWO_CPUS

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SIZE = 8


class ScaledCosineLearner(keras.Model):
    """Neither a backbone nor a CrossTransformer: a linear map of the pixels, cosine
    similarity to class means, a learned temperature. Counts its own forward passes."""

    def __init__(self, dim=6):
        super().__init__()
        self.project = keras.layers.Dense(dim, use_bias=False, name="project")
        self.temperature = self.add_weight(name="temperature", shape=(),
                                           initializer=keras.initializers.Constant(3.0))
        self.calls = 0

    def episode_logits(self, episode, training, gather=learners.no_gather):
        self.calls += 1
        def embed(images):
            return tf.math.l2_normalize(
                self.project(tf.reshape(images, [-1, int(np.prod(images.shape[1:]))])), axis=-1)
        support = gather(embed(episode.support_images))
        labels = learners.gather_labels(episode.support_labels, gather)
        one_hot = tf.one_hot(labels, tf.reduce_max(labels) + 1)
        means = tf.math.l2_normalize(tf.matmul(one_hot, support, transpose_a=True), axis=-1)
        return self.temperature * tf.matmul(embed(episode.query_images), means,
                                            transpose_b=True)

    def call(self, episode, training=False):
        logits = self.episode_logits(episode, training=bool(training))
        labels = tf.cast(episode.query_labels, tf.int32)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        accuracy = tf.reduce_mean(tf.cast(
            tf.equal(tf.argmax(logits, 1, output_type=tf.int32), labels), tf.float32))
        return learners.LearnerOutput(logits, loss, accuracy)


def episodes(seed, size=SIZE):
    from tests.training.test_loop import episode_stream
    return episode_stream(seed, size=size)


def make_trainer(tmp_path, strategy=None):
    gin.clear_config()
    gin.external_configurable(ScaledCosineLearner, "ScaledCosineLearner")
    gin.parse_config("Trainer.train_learner_class = @ScaledCosineLearner")
    options = loop.trainer_options(num_updates=4, learning_rate=1e-2, checkpoint_every=2,
                                   validate_every=2, log_every=2, num_eval_episodes=3, seed=3)
    return loop.Trainer(loop.RunInputs(checkpoint_dir=str(tmp_path / "ckpt")), options,
                        strategy=strategy, train_episodes_fn=episodes,
                        eval_episodes_fn=lambda split, seed: episodes(seed),
                        print_fn=lambda message: None)


TWO_REPLICAS = TWO_CPUS + textwrap.dedent("""
    import json, pathlib, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from tests.training.test_loop import make_episode
    from tests.training.test_one_path import make_trainer
    tmp = pathlib.Path(sys.argv[2])
    out = {}
    for name, strategy in (("one", tf.distribute.get_strategy()),
                           ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
        t = make_trainer(tmp / name, strategy=strategy)
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


def test_a_new_learner_trains_validates_and_evaluates_as_itself(tmp_path):
    t = make_trainer(tmp_path)
    try:
        best = t.train()
        assert type(t.learner) is ScaledCosineLearner and t.learner.calls > 0
        episode = next(episodes(11))
        own = t.learner.episode_logits(episode, training=False)
        np.testing.assert_allclose(np.asarray(t.predict_fn(episode)[0]), own.numpy(),
                                   rtol=1e-5, atol=1e-6)
        assert float(t.learner.temperature.numpy()) != 3.0  # its own variables were trained
        results = t.validation.run(t.predict_fn, "test", num_episodes=4)
        assert results["sources"]["episodes"]["num_episodes"] == 4
        assert 0.0 <= best["valid_accuracy"] <= 1.0 and best["step"] in (0, 2, 4)
    finally:
        gin.clear_config()


@pytest.mark.slow  # a subprocess with two logical CPUs, two trainings: ~25 s
def test_a_new_learner_trains_the_same_under_two_replicas(tmp_path):
    script = tmp_path / "two.py"
    script.write_text(TWO_REPLICAS)
    proc = subprocess.run([sys.executable, str(script), str(REPO_ROOT), str(tmp_path / "2")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))[7:])
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


def test_final_test_is_reproduced_by_the_evaluate_cli(tmp_path):
    from ctx_tf import evaluate
    from ctx_tf import train
    from tests.evaluation.helpers import write_tiny_source

    records = write_tiny_source(tmp_path / "records", "tiny", size=16, splits=(6, 5, 6),
                                num_classes=17)
    gin_file = tmp_path / "tiny.gin"
    gin_file.write_text(FINAL_TEST_GIN)
    run_dir = tmp_path / "run"
    gin.clear_config()
    try:
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
    finally:
        gin.clear_config()
    ours, theirs = final["sources"]["tiny"]["episodes"], again["sources"]["tiny"]["episodes"]
    assert len(ours) == len(theirs) == 5
    for a, b in zip(ours, theirs):
        assert (a["fingerprint"], a["image_digest"]) == (b["fingerprint"], b["image_digest"])
        assert a["accuracy"] == b["accuracy"], (a, b)
    assert again["model"]["checkpoint"] == final["model"]["checkpoint"]
