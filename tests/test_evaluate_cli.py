"""End to end: train CTX a few steps on tiny records, evaluate it with ctx_tf.evaluate."""

import json
import os

import gin
import numpy as np
import pytest
from absl.testing import flagsaver
from PIL import Image

from ctx_tf import cli
from ctx_tf import evaluate
from ctx_tf import checkpoints
from ctx_tf import learners
from ctx_tf.errors import UserError
from ctx_tf.training import loop
from ctx_tf.evaluation import plot
from ctx_tf.evaluation import results as results_lib
from tests.data.helpers import write_tiny_source

GIN = """
Trainer.train_learner_class = @CrossTransformerLearner
Trainer.eval_learner_class = @CrossTransformerLearner
Trainer.data_config = @DataConfig()
Trainer.train_episode_config = @train/EpisodeDescriptionConfig()
Trainer.eval_episode_config = @EpisodeDescriptionConfig()
Learner.embedding_fn = @four_layer_convnet
CrossTransformerLearner.query_dim = 8
CrossTransformerLearner.val_dim = 8
DataConfig.image_height = 16
DataConfig.shuffle_buffer_size = 20
EpisodeDescriptionConfig.max_ways_upper_bound = 6
EpisodeDescriptionConfig.max_num_query = 3
EpisodeDescriptionConfig.max_support_set_size = 24
EpisodeDescriptionConfig.max_support_size_contrib_per_class = 4
train/EpisodeDescriptionConfig.simclr_episode_fraction = 0.5
train/EpisodeDescriptionConfig.ignore_hierarchy_probability = 0.5
Trainer.num_updates = 2
Trainer.learning_rate = 0.01
Trainer.validate_every = 2
Trainer.checkpoint_every = 2
Trainer.log_every = 1
Trainer.num_eval_episodes = 2
final_test.num_episodes = 5
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(records root, gin file, training directory) of a CTX trained for 2 updates."""
    root = tmp_path_factory.mktemp("e2e")
    write_tiny_source(root / "records", "tiny", size=16, splits=(6, 5, 6))
    records = str(root / "records")
    gin_file = root / "tiny_ctx.gin"
    gin_file.write_text(GIN)
    train_dir = str(root / "train")
    gin.clear_config()
    try:
        cli.parse_gin([str(gin_file)], [])
        trainer = loop.Trainer(loop.RunInputs(
            checkpoint_dir=train_dir, records_root_dir=records, train_datasets=["tiny"],
            eval_datasets=["tiny"]), print_fn=lambda *_: None)
        trainer.train()
    finally:
        gin.clear_config()
    return records, str(gin_file), train_dir


pytestmark = pytest.mark.usefixtures("clean_gin")


def _run(trained, output_dir, **kwargs):
    records, gin_file, train_dir = trained
    args = dict(gin_config=[gin_file], checkpoint="best", train_checkpoint_dir=train_dir,
                records_root_dir=records, datasets=["tiny"], num_episodes=3, seed=7,
                output_dir=str(output_dir), log=lambda *_: None)
    args.update(kwargs)
    return evaluate.run_evaluation(**args)


@pytest.mark.slow
def test_end_to_end_evaluation_writes_all_outputs(trained, tmp_path):
    results = _run(trained, tmp_path / "eval")
    out = tmp_path / "eval"
    assert sorted(os.listdir(out)) == ["episodes.csv", "operative_config.gin", "results.json",
                                       "results.md", "results.png"]
    saved = results_lib.load_results(str(out))
    assert saved["model"]["checkpoint"] == json.load(
        open(os.path.join(trained[2], "best_checkpoint.json")))["checkpoint"]
    assert saved["model"]["learner"] == "CrossTransformerLearner"
    protocol = saved["protocol"]
    assert protocol["split"] == "TEST" and protocol["num_episodes"] == 3
    # Training-only settings never reach evaluation episodes.
    assert protocol["episode_config"]["simclr_episode_fraction"] == 0.0
    assert protocol["episode_config"]["ignore_hierarchy_probability"] == 0.0
    entry = saved["sources"]["tiny"]
    assert entry["num_episodes"] == 3 and entry["num_classes"] == 6
    accuracies = [e["accuracy"] for e in entry["episodes"]]
    assert entry["mean"] == pytest.approx(np.mean(accuracies))
    assert entry["ci95"] == pytest.approx(1.96 * np.std(accuracies) / np.sqrt(3))
    md = (out / "results.md").read_text()
    assert "| ctx_tf (ours) |" in md and "## Per source" in md
    image = Image.open(out / "results.png")
    image.load()
    assert image.format == "PNG" and image.size == plot.DEFAULT_SIZE
    assert "CrossTransformerLearner.query_dim = 8" in (out / "operative_config.gin").read_text()

    # Same seed: same episodes, so the paired difference of a model with itself is exactly 0.
    again = _run(trained, tmp_path / "again", compare_with=str(out / "results.json"))
    assert again["sources"]["tiny"]["episodes"] == results["sources"]["tiny"]["episodes"]
    diff = again["comparison"]["paired_difference"]["tiny"]
    assert diff["mean"] == 0.0 and diff["ci95"] == 0.0 and diff["image_mismatches"] == 0
    assert "## Paired difference" in (tmp_path / "again" / "results.md").read_text()

    # A checkpoint directory means its latest checkpoint (here the same step).
    latest = _run(trained, tmp_path / "latest", checkpoint=trained[2], train_checkpoint_dir=None)
    assert latest["model"]["checkpoint_info"]["selected_by"].startswith("latest in")


@pytest.mark.slow
def test_checkpoint_of_another_model_is_rejected_with_the_variables(trained, tmp_path):
    with pytest.raises(checkpoints.CheckpointError) as info:
        _run(trained, tmp_path / "eval", gin_bindings=[
            "Trainer.train_learner_class = @PrototypicalNetworkLearner",
            "Trainer.eval_learner_class = @PrototypicalNetworkLearner"])
    message = str(info.value)
    assert "does not match the learner (PrototypicalNetworkLearner)" in message
    assert "unexpected in the checkpoint" in message and "tformer_keys" in message
    assert not (tmp_path / "eval").exists()


def test_cli_reports_bad_inputs_clearly(tmp_path):
    write_tiny_source(tmp_path / "records", "tiny", size=8)
    records = str(tmp_path / "records")
    gin_file = tmp_path / "c.gin"
    gin_file.write_text("DataConfig.image_height = 8\n")
    common = dict(gin_config=[str(gin_file)], records_root_dir=records,
                  output_dir=str(tmp_path / "out"), checkpoint=str(tmp_path / "nowhere"))
    cases = [
        (dict(datasets=["tiny", "imagenet"]), "unknown source 'imagenet'"),
        (dict(datasets=["tiny"]), "checkpoint " + str(tmp_path / "nowhere") + " not found"),
        (dict(datasets=["tiny"], checkpoint="best"), "--checkpoint=best needs "
                                                     "--train_checkpoint_dir"),
        (dict(datasets=["tiny"], split="valid", checkpoint="best",
              train_checkpoint_dir=str(tmp_path)), "best_checkpoint.json does not exist"),
        (dict(datasets=["tiny"], published_rows=["nope"]), "no published row 'nope'"),
        (dict(datasets=["tiny"], gin_bindings=["NoSuchThing.x = 1"]),
         "gin configuration: No configurable matching 'NoSuchThing'"),
        (dict(datasets=["tiny"], output_dir=str(gin_file)),
         f"--output_dir={gin_file} is a file, not a folder"),
    ]
    if not evaluate.FLAGS.is_parsed():
        evaluate.FLAGS.mark_as_parsed()  # defaults; flagsaver sets the values of each case
    for flags, expected in cases:
        values = dict(common, **flags)
        with flagsaver.flagsaver(**values), pytest.raises(UserError) as info:
            evaluate.main(["ctx_tf.evaluate"])
        assert expected in str(info.value), (flags, str(info.value))
    assert not (tmp_path / "out").exists()


RESNET_GIN = """
Trainer.train_learner_class = @CrossTransformerLearner
Trainer.eval_learner_class = @CrossTransformerLearner
Trainer.data_config = @DataConfig()
Learner.embedding_fn = @resnet34
resnet34.max_stride = 16
resnet34.deeplab_alignment = False
DataConfig.image_height = 32
DataConfig.shuffle_buffer_size = 20
EpisodeDescriptionConfig.max_ways_upper_bound = 6
EpisodeDescriptionConfig.max_num_query = 3
EpisodeDescriptionConfig.max_support_set_size = 24
EpisodeDescriptionConfig.max_support_size_contrib_per_class = 4
"""


@pytest.mark.slow
def test_official_tf1_checkpoint_is_detected_and_evaluates_like_our_checkpoint(tmp_path):
    """--checkpoint=<official TF1 prefix> loads by official names; same episodes, same results
    as the same weights in our own checkpoint format."""
    import tensorflow as tf

    from ctx_tf import official_checkpoint

    write_tiny_source(tmp_path / "records", "tiny", size=32, splits=(6, 5, 6))
    records = str(tmp_path / "records")
    gin_file = tmp_path / "resnet_ctx.gin"
    gin_file.write_text(RESNET_GIN)
    cli.parse_gin([str(gin_file)], [])
    learner = learners.build_learner(training=False, image_size=32)
    rng = np.random.default_rng(0)
    for variable in learner.variables:  # non-trivial weights and EMAs
        if "var_ema" in variable.name:
            variable.assign(rng.uniform(0.5, 2.0, variable.shape).astype(np.float32))
        elif "mean_ema" in variable.name:
            variable.assign(rng.normal(0.0, 0.1, variable.shape).astype(np.float32))
    official = official_checkpoint.save_official_checkpoint(
        learner, str(tmp_path / "tf1" / "model.ckpt"), global_step=1234)
    ours = tf.train.Checkpoint(learner=learner).save(str(tmp_path / "tf2" / "ckpt"))
    gin.clear_config()
    outputs = {}
    for name, prefix in (("official", official), ("ours", ours)):
        gin.clear_config()
        out_dir = tmp_path / f"eval_{name}"
        logs = []
        evaluate.run_evaluation(gin_config=[str(gin_file)], checkpoint=prefix,
                                records_root_dir=records, datasets=["tiny"], num_episodes=3,
                                seed=3, output_dir=str(out_dir), log=logs.append)
        outputs[name] = json.loads((out_dir / "results.json").read_text())
        detected = any("official TF1 checkpoint" in line and "global_step 1234" in line
                       for line in logs)
        assert detected == (name == "official"), logs
    accuracies = {name: [e["accuracy"] for e in out["sources"]["tiny"]["episodes"]]
                  for name, out in outputs.items()}
    assert len(accuracies["official"]) == 3
    assert accuracies["official"] == accuracies["ours"]


KILL_SCRIPT = """
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from ctx_tf import evaluate
from ctx_tf.evaluation import evaluator

append = evaluator.Journal.append
def append_then_die(self, source, record, seconds):
    append(self, source, record, seconds)
    if source == "other" and len(self.done[source]) == 2:
        os.kill(os.getpid(), signal.SIGKILL)  # a hard kill after 3 + 2 journaled episodes
evaluator.Journal.append = append_then_die
evaluate.run_evaluation(**eval(sys.argv[2]))
"""


def _floor_args(records, output_dir):
    return dict(floor_only=True, records_root_dir=records, datasets=["tiny", "other"],
                num_episodes=3, seed=11, output_dir=str(output_dir), log=lambda *_: None)


def _without_timing(results):
    for entry in results["sources"].values():
        del entry["seconds"], entry["episodes_per_second"]
    return results


def test_floor_only_evaluation_survives_a_hard_kill(tmp_path):
    import subprocess
    import sys

    from ctx_tf.evaluation import evaluator as journal_lib
    from ctx_tf.evaluation.floor import FLOOR_NAME

    write_tiny_source(tmp_path / "records", "tiny", size=8)
    records = str(tmp_path / "records")
    write_tiny_source(tmp_path / "records", "other", size=8, seed=1)
    whole = _run_floor(records, tmp_path / "whole")
    assert whole["model"]["name"] == FLOOR_NAME and whole["model"]["checkpoint"] is None
    for entry in whole["sources"].values():
        assert [e["accuracy"] for e in entry["episodes"]] == [
            e["floor_accuracy"] for e in entry["episodes"]]
        assert entry["comparability"]["withheld"].endswith("not a Meta-Dataset source")
    assert FLOOR_NAME in (tmp_path / "whole" / "results.md").read_text()

    out = tmp_path / "killed"
    args = dict(_floor_args(records, out))
    del args["log"]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), repo, repr(args)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-3000:]
    journal_path = out / journal_lib.JOURNAL_NAME
    assert len(journal_path.read_text().splitlines()) == 1 + 3 + 2
    assert not (out / "results.json").exists()  # nothing that passes for a result

    # Another command refuses the journal, naming what differs.
    with pytest.raises(journal_lib.JournalError, match="differs in: seed"):
        evaluate.run_evaluation(**dict(_floor_args(records, out), seed=12))
    logs = []
    resumed = evaluate.run_evaluation(**dict(_floor_args(records, out), log=logs.append))
    assert any("resuming: 5 episode(s)" in line for line in logs), logs
    assert not journal_path.exists()
    assert _without_timing(results_lib.load_results(str(out))) == _without_timing(
        results_lib.load_results(str(tmp_path / "whole")))
    assert resumed["sources"]["other"]["episodes"] == whole["sources"]["other"]["episodes"]


def _run_floor(records, output_dir):
    return evaluate.run_evaluation(**_floor_args(records, output_dir))
