"""All-sources training end to end, through the real commands, on miniature copies of the
Meta-Dataset sources (`ctx_tf.data.writing.synthetic.write_benchmark_copy`: each source's
official spec type, class ids and class layout, with four generated images per class).

`python -m ctx_tf.train` trains a few updates on the official all-sources lists
(`gin/setups/all.gin`, `all_v2.gin`) with a tiny backbone and validates on the setup's
validation sources; `python -m ctx_tf.evaluate`, given only the run, then evaluates every test
source of the run's benchmark version in one command. Both run on one device and on two CPU
replicas (a launcher splits the CPU into two logical devices before the command starts).
Nothing learnt here means anything; the protocol checks must call the results "not comparable"
(miniature records, 1 episode, 16 px), never fail.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from ctx_tf.data import facts
from ctx_tf.data.writing import synthetic
from ctx_tf.evaluation import benchmark_versions
from tests.scripts import TWO_CPUS_LAUNCHER

# The command's own start (cli.run) hides TensorFlow's logs; these must not reach stderr.
FOREIGN_LOG_LINE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages|WARNING:tensorflow"
                              r"|.*Path not found|.*is deprecated)", re.MULTILINE)

TINY_GIN = """
include 'setups/{setup}.gin'
include 'setups/crosstransformer_config.gin'
Learner.embedding_fn = @four_layer_convnet
CrossTransformerLearner.query_dim = 8
CrossTransformerLearner.val_dim = 8
DataConfig.image_height = 16
DataConfig.shuffle_buffer_size = 4
DataConfig.num_prefetch = 0
EpisodeDescriptionConfig.max_ways_upper_bound = 5
EpisodeDescriptionConfig.max_num_query = 2
EpisodeDescriptionConfig.max_support_set_size = 10
EpisodeDescriptionConfig.max_support_size_contrib_per_class = 2
Trainer.distribute = True
Trainer.num_updates = 2
Trainer.learning_rate = 0.001
Trainer.log_every = 1
Trainer.validate_every = 2
Trainer.checkpoint_every = 2
Trainer.num_eval_episodes = 1
final_test.enabled = False
"""

@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Every Meta-Dataset source (both ILSVRC flavours) in miniature: ~6,900 classes."""
    root = tmp_path_factory.mktemp("records")
    for name in facts.SOURCES:
        synthetic.write_benchmark_copy(root, name, max_images_per_class=4, image_size=8)
    return root


def run(module, args, tmp_path, replicas):
    """`python -m <module> <args>`; with two replicas, the CPU is split into two logical devices
    first, so that `Trainer.distribute = True` (train) and the run's operative config (evaluate)
    mirror the learner over two replicas."""
    env = {k: v for k, v in os.environ.items() if k not in ("CTX_TF_VERBOSE", "TF_CONFIG")}
    env["CTX_TF_CACHE"] = str(tmp_path / "cache")
    if replicas == 1:
        command = [sys.executable, "-m", module]
    else:
        launcher = tmp_path / "two_cpus.py"
        launcher.write_text(TWO_CPUS_LAUNCHER)
        env["TF_CPP_MIN_LOG_LEVEL"] = "3"  # the launcher starts TensorFlow before the command
        command = [sys.executable, str(launcher), module]
    proc = subprocess.run(command + args, capture_output=True, text=True, timeout=600,
                          cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    if replicas == 1:
        assert FOREIGN_LOG_LINE.search(proc.stderr) is None, proc.stderr
    return proc.stdout


def train_and_evaluate(records, tmp_path, setup, replicas):
    version = benchmark_versions.get(benchmark_versions.MD_V2 if setup.endswith("_v2")
                                     else benchmark_versions.MD_V1)
    gin_file = tmp_path / f"tiny_{setup}.gin"
    gin_file.write_text(TINY_GIN.format(setup=setup))
    ckpt = tmp_path / "run" / "ckpt"
    out = run("ctx_tf.train", [f"--gin_config={gin_file}", f"--records_root_dir={records}",
                               f"--train_checkpoint_dir={ckpt}",
                               f"--summary_dir={tmp_path / 'run' / 'summaries'}"],
              tmp_path, replicas)
    assert f"Benchmark: {version.title} ({version.name})" in out
    training_line = next(line for line in out.splitlines() if line.startswith("Training on: "))
    assert re.findall(r"(\w+) \(train", training_line) == list(version.train_sources)
    strategy = "MirroredStrategy with 2 replica(s)" if replicas == 2 else "with 1 replica(s)"
    assert strategy in out
    assert re.search(r"\[step 2\] validation: [\d.]+ ± [\d.]+ % over 1 episodes per source",
                     out), out
    manifest = json.loads((ckpt / "run_manifest.json").read_text())
    assert manifest["benchmark"] == version.name
    assert manifest["train_datasets"] == list(version.train_sources)
    valid = json.loads((ckpt / "valid" / "results.json").read_text())
    assert (valid["protocol"]["split"], valid["protocol"]["benchmark"]) == ("VALID", version.name)
    assert list(valid["sources"]) == list(version.valid_sources)

    # Only the run: its version's test sources, records, image size and gin come from it.
    out = run("ctx_tf.evaluate", ["--checkpoint=best", f"--train_checkpoint_dir={ckpt}",
                                  "--num_episodes=1", "--progress_every_seconds=1000"],
              tmp_path, replicas)
    assert (f"benchmark: {version.title} ({version.name}: the version the training run "
            f"{ckpt} trained for); sources: the {version.name} test sources") in out
    if replicas == 2:
        assert "strategy: MirroredStrategy with 2 replicas" in out
    results = json.loads((ckpt / "evaluation" / "test_seed0" / "results.json").read_text())
    assert results["protocol"]["benchmark"] == version.name
    assert list(results["sources"]) == list(version.test_sources)
    sampling = {"ilsvrc_2012": "dag", "omniglot": "bilevel"}
    for name, entry in results["sources"].items():
        assert entry["num_episodes"] == 1 and entry["episodes"][0]["way"] >= 5
        assert entry["sampling"] == sampling.get(name, "uniform")
        # Miniature records: never set beside the published rows, with the reason.
        assert entry["comparability"]["official"] and not entry["comparability"]["comparable"]
        assert entry["comparability"]["withheld"].startswith(f"{name}: ")
    return results, (ckpt / "evaluation" / "test_seed0" / "results.md").read_text()


# The published rows are all trained on ImageNet only: an all-sources run is set beside none.
SETTING_NOTE = ("not compared with the published CTX: no such row is published for training "
                "on all datasets, the model's training setting")


def test_all_sources_v1_on_one_device(records, tmp_path):
    results, report = train_and_evaluate(records, tmp_path, "all", replicas=1)
    assert "- benchmark: Meta-Dataset v1 (`md_v1`)" in report
    assert results["model"]["training_setting"] == "all"
    traffic_sign = results["sources"]["traffic_sign"]["comparability"]
    assert traffic_sign["withheld"].startswith(
        "traffic_sign: not the official records (TEST: 172 of 39,209 images; 43 of 43 classes")
    assert traffic_sign["published_rows"] == []  # no CTX row trained on all datasets
    assert f"Not ranked: {SETTING_NOTE}." in report and "CTX (published)" not in report


@pytest.mark.slow
def test_all_sources_v1_on_two_replicas(records, tmp_path):
    train_and_evaluate(records, tmp_path, "all", replicas=2)


@pytest.mark.slow
@pytest.mark.parametrize("replicas", [1, 2])
def test_all_sources_v2(records, tmp_path, replicas):
    results, report = train_and_evaluate(records, tmp_path, "all_v2", replicas=replicas)
    assert "- benchmark: Meta-Dataset v2 (`md_v2`)" in report
    for name, entry in results["sources"].items():
        assert entry["comparability"]["withheld"].startswith(f"{name}: not the official")
    assert f"Not ranked: {SETTING_NOTE}." in report
