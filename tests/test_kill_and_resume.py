"""A command killed with SIGKILL and rerun with the same command ends with the same results.

`python -m ctx_tf.train` on a tiny demo source, killed right after its checkpoint at step 2 of
6, on one device and under two replicas (two logical CPUs); `python -m ctx_tf.evaluate` with
the run's best checkpoint, killed after two journaled episodes. The kill comes from a wrapper
that runs the command's module (`runpy`) with one hook; the rerun is the plain command.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from ctx_tf.data import demo
from tests.conftest import REPO_ROOT
from tests.scripts import TWO_CPUS

DEMO_GIN = str(REPO_ROOT / "gin" / "demo.gin")
BINDINGS = ["Trainer.seed = 3", "Trainer.num_updates = 6", "Trainer.checkpoint_every = 2",
            "Trainer.validate_every = 3", "Trainer.log_every = 2",
            "Trainer.num_eval_episodes = 2", "DataConfig.image_height = 16",
            "final_test.num_episodes = 4", "final_test.seed = 21"]
# Runs `python -m <argv[1]> <argv[3:]>`; argv[2] "train@2" kills right after the training
# checkpoint of step 2 is written, "evaluate@2" after the second journaled episode, "-" never.
WRAPPER = """
import functools, os, runpy, signal, sys
import tensorflow as tf
from ctx_tf import distribute
from ctx_tf.evaluation import evaluator

if os.environ.get("TWO_REPLICAS"):  # Trainer.distribute mirrors over the two logical CPUs
    distribute.make_strategy = functools.partial(distribute.make_strategy,
                                                 devices=["/cpu:0", "/cpu:1"])
command, kill = sys.argv[1], sys.argv[2]
save, append = tf.train.CheckpointManager.save, evaluator.Journal.append

def save_then_die(self, *args, **kwargs):
    path = save(self, *args, **kwargs)
    if kill == "train@2" and path.endswith("-2") and "/best/" not in path:
        os.kill(os.getpid(), signal.SIGKILL)
    return path

def append_then_die(self, source, record, seconds):
    append(self, source, record, seconds)
    if kill == "evaluate@2" and len(self.done[source]) == 2:
        os.kill(os.getpid(), signal.SIGKILL)

tf.train.CheckpointManager.save, evaluator.Journal.append = save_then_die, append_then_die
sys.argv = [command] + sys.argv[3:]
runpy.run_module(command, run_name="__main__")
"""


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return demo.ensure_demo_source(
        cache_dir=tmp_path_factory.mktemp("demo"), print_fn=lambda message: None,
        num_train_classes=6, num_valid_classes=5, num_test_classes=5, images_per_class=10,
        image_size=16)


def _command(tmp_path, module, args, kill=None, two_replicas=False):
    """Runs the command (through the wrapper when `two_replicas` or `kill`)."""
    env = dict(os.environ, CTX_TF_CACHE=str(tmp_path / "cache"))
    if two_replicas:
        env["TWO_REPLICAS"] = "1"
    if kill or two_replicas:
        script = tmp_path / "wrapper.py"
        script.write_text((TWO_CPUS if two_replicas else "") + WRAPPER)
        argv = [sys.executable, str(script), module, kill or "-"] + args
    else:
        argv = [sys.executable, "-m", module] + args
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env=env)


def _train(tmp_path, records, run, kill=None, two_replicas=False):
    bindings = BINDINGS + (["Trainer.distribute = True"] if two_replicas else [])
    args = [f"--gin_config={DEMO_GIN}", f"--records_root_dir={records}",
            f"--train_checkpoint_dir={tmp_path / run / 'ckpt'}",
            f"--summary_dir={tmp_path / run / 'summaries'}"]
    return _command(tmp_path, "ctx_tf.train", args + [f"--gin_bindings={b}" for b in bindings],
                    kill, two_replicas)


def _final_test(tmp_path, run):
    path = tmp_path / run / "ckpt" / "final_test" / "results.json"
    return json.loads(path.read_text())["sources"]["demo_glyphs"]["episodes"]


def _check_resumed_training(tmp_path, records, two_replicas):
    """Trains "whole"; trains "killed", killed after ckpt-2, then reruns it: same results."""
    whole = _train(tmp_path, records, "whole", two_replicas=two_replicas)
    assert whole.returncode == 0, whole.stdout[-2000:] + whole.stderr[-3000:]
    assert f"with {2 if two_replicas else 1} replica(s)" in whole.stdout, whole.stdout

    killed = _train(tmp_path, records, "killed", kill="train@2", two_replicas=two_replicas)
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-3000:]
    ckpt = tmp_path / "killed" / "ckpt"
    assert (ckpt / "ckpt-2.index").exists() and not (ckpt / "ckpt-4.index").exists()
    assert not (ckpt / "final_test").exists()

    resumed = _train(tmp_path, records, "killed", two_replicas=two_replicas)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert re.search(r"Resumed from \S*ckpt-2 \(step 2\)", resumed.stdout), resumed.stdout
    # The last checkpoint holds the same weights and optimizer state (so the updates after
    # the kill were the same), the same checkpoint is the best ...
    want, got = (tf.train.load_checkpoint(str(tmp_path / run / "ckpt" / "ckpt-6"))
                 for run in ("whole", "killed"))
    dtypes = want.get_variable_to_dtype_map()
    assert sorted(dtypes) == sorted(got.get_variable_to_dtype_map())
    names = [name for name, dtype in sorted(dtypes.items()) if dtype != tf.string]
    assert len(names) > 20  # the learner's weights, the step, the optimizer's state
    for name in names:
        np.testing.assert_allclose(got.get_tensor(name), want.get_tensor(name), rtol=1e-5,
                                   atol=1e-7, err_msg=name)
    best = [json.loads((tmp_path / run / "ckpt" / "best_checkpoint.json").read_text())
            for run in ("whole", "killed")]
    assert best[1]["step"] == best[0]["step"]
    assert best[1]["valid_accuracy"] == pytest.approx(best[0]["valid_accuracy"])
    # ... and the final test gives every episode the same accuracy.
    want, got = _final_test(tmp_path, "whole"), _final_test(tmp_path, "killed")
    assert len(got) == len(want) == 4
    assert [e["accuracy"] for e in got] == [e["accuracy"] for e in want]


@pytest.mark.slow  # five commands in subprocesses: 2-4 min
def test_killed_training_and_evaluation_commands_resume_to_the_same_results(tmp_path,
                                                                           records):
    _check_resumed_training(tmp_path, records, two_replicas=False)
    out = tmp_path / "evaluation"
    # The final test's episodes: same checkpoint, seed and number of episodes.
    args = ["--checkpoint=best", f"--train_checkpoint_dir={tmp_path / 'whole' / 'ckpt'}",
            "--num_episodes=4", "--seed=21", f"--output_dir={out}"]
    killed = _command(tmp_path, "ctx_tf.evaluate", args, kill="evaluate@2")
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-3000:]
    assert not (out / "results.json").exists()

    resumed = _command(tmp_path, "ctx_tf.evaluate", args)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert "resuming: 2 episode(s) already evaluated" in resumed.stdout, resumed.stdout
    got = json.loads((out / "results.json").read_text())["sources"]["demo_glyphs"]["episodes"]
    want = _final_test(tmp_path, "whole")
    assert len(got) == 4
    assert [e["accuracy"] for e in got] == [e["accuracy"] for e in want]
    assert [e["floor_accuracy"] for e in got] == [e["floor_accuracy"] for e in want]


@pytest.mark.slow  # three commands in subprocesses, two replicas each: 2-3 min
def test_a_killed_training_command_resumes_to_the_same_results_under_two_replicas(tmp_path,
                                                                                 records):
    _check_resumed_training(tmp_path, records, two_replicas=True)
