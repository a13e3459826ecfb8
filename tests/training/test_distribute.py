"""Distribution: two replicas give the same loss, gradients and updates as one; multi-worker.

Each check runs in a subprocess: logical devices and TF_CONFIG must be set before TensorFlow
initializes.
"""

import json
import os
import socket
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from ctx_tf import distribute
from tests.scripts import TWO_CPUS, run_script, script_result

MIRRORED_SCRIPT = TWO_CPUS + textwrap.dedent("""
    import json, pathlib, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from tests.training.helpers import (episode_gradients, evaluate_episode, make_episode,
                                        make_trainer)
    tmp = pathlib.Path(sys.argv[2])

    single = make_trainer(tmp / "one", strategy=tf.distribute.get_strategy(),
                          learning_rate=1e-2, decay_every=1)
    mirrored = make_trainer(tmp / "two", learning_rate=1e-2, decay_every=1,
                            strategy=tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    assert mirrored.strategy.num_replicas_in_sync == 2
    rng = np.random.RandomState(0)
    # 9 support images and 6 queries: chunks of 5 + 4 and 3 + 3.
    episodes = [make_episode(rng, way=3, shot=3, query=2) for _ in range(2)]
    for t in (single, mirrored):
        t.updater.ensure_variables(episodes[0])
    for a, b in zip(single.learner.variables, mirrored.learner.variables):
        b.assign(a.numpy())

    def diff(xs, ys):
        return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(xs, ys))

    def scale(xs):
        return max(float(np.max(np.abs(np.asarray(x)))) for x in xs)

    out = {}
    loss1, grads1 = episode_gradients(single, episodes[0])
    loss2, grads2 = episode_gradients(mirrored, episodes[0])
    out["loss"] = [loss1, loss2]
    out["grad_diff"], out["grad_scale"] = diff(grads1, grads2), scale(grads1)
    # A training-mode pass updates the EMAs from the (all-reduced) support moments.
    emas = lambda t: [v.numpy() for v in t.learner.variables if "_ema" in v.name]
    out["num_ema"] = len(emas(single))
    out["ema_diff"] = diff(emas(single), emas(mirrored))
    results = []
    for episode in episodes:
        results.append([single.updater.train_on_episode(episode),
                        mirrored.updater.train_on_episode(episode)])
    out["train"] = results
    out["weight_diff"] = diff([v.numpy() for v in single.learner.variables],
                              [v.numpy() for v in mirrored.learner.variables])
    out["steps"] = [int(t.updater.step.numpy()) for t in (single, mirrored)] + [
        int(t.updater.optimizer.iterations.numpy()) for t in (single, mirrored)]
    out["eval"] = [evaluate_episode(single, episodes[0]), evaluate_episode(mirrored, episodes[0])]
    print("RESULT " + json.dumps(out))
""")

WORKER_SCRIPT = textwrap.dedent("""
    import json, os, pathlib, sys
    import numpy as np
    import tensorflow as tf
    sys.path.insert(0, sys.argv[1])
    from ctx_tf import distribute
    from tests.training.helpers import make_trainer
    strategy = distribute.make_strategy()
    assert isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy), strategy
    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    # Both workers are given the same directories; only the chief (worker 0) writes there.
    t = make_trainer(pathlib.Path(sys.argv[3]), strategy=strategy,
                     num_updates=3, checkpoint_every=3, validate_every=3, num_eval_episodes=2)
    best = t.train()
    weights = [v.numpy().astype(float) for v in t.learner.trainable_variables]
    print("RESULT " + json.dumps(dict(
        replicas=strategy.num_replicas_in_sync, step=int(t.updater.step.numpy()),
        chief=t.chief, checksum=[float(np.sum(w)) for w in weights],
        sq=[float(np.sum(w * w)) for w in weights], best=best["valid_accuracy"])))
""")


@pytest.mark.slow  # a subprocess with two logical CPUs: ~30 s
def test_two_replicas_match_one_device(tmp_path):
    out = script_result(run_script(MIRRORED_SCRIPT, tmp_path))
    loss1, loss2 = out["loss"]
    assert loss2 == pytest.approx(loss1, rel=1e-5)
    # Gradients include the support gather and the all-reduced batch-norm moments.
    assert out["grad_diff"] <= 1e-5 * max(1.0, out["grad_scale"]), out
    assert out["num_ema"] > 0 and out["ema_diff"] < 1e-5, out
    for one, two in out["train"]:
        assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
        assert two["accuracy"] == pytest.approx(one["accuracy"])
        assert two["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-4)
        assert two["learning_rate"] == one["learning_rate"]
    # Adam divides each gradient element by its own magnitude, so an element whose gradient is
    # at the rounding level of the two (differently summed) paths may move differently by a
    # small fraction of the learning rate (1e-2 here); the gradients agree to 1e-5 above.
    assert out["weight_diff"] < 1e-2 * 1e-2, out
    # The step and the LR schedule advance once per update, whatever the number of replicas.
    assert out["steps"] == [2, 2, 2, 2]
    (acc1, eval_loss1), (acc2, eval_loss2) = out["eval"]
    assert acc2 == pytest.approx(acc1) and eval_loss2 == pytest.approx(eval_loss1, rel=1e-5)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_multi_worker_mirrored_two_processes_agree(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}))
        worker_dir = tmp_path / f"w{index}"
        worker_dir.mkdir()
        processes.append(run_script(WORKER_SCRIPT, worker_dir, tmp_path / "run", env=env))
    results = [script_result(p, timeout=300) for p in processes]
    assert [r["replicas"] for r in results] == [2, 2]
    assert [r["step"] for r in results] == [3, 3]
    np.testing.assert_allclose(results[0]["checksum"], results[1]["checksum"], rtol=1e-6)
    np.testing.assert_allclose(results[0]["sq"], results[1]["sq"], rtol=1e-6)
    assert results[0]["best"] == results[1]["best"]
    assert [r["chief"] for r in results] == [True, False]
    # The chief's files only: checkpoints of steps 0 and 3, the best record, the config.
    ckpt = tmp_path / "run" / "ckpt"
    assert tf.train.latest_checkpoint(str(ckpt)).endswith("ckpt-3")
    assert json.loads((ckpt / "best_checkpoint.json").read_text())["valid_accuracy"] == (
        results[0]["best"])
    assert (ckpt / "operative_config.gin").exists()


# ----------------------------------------------------------------------------- helpers


@pytest.mark.compat
def test_chunk_bounds_are_contiguous_ceil_chunks():
    bounds = [tuple(int(x) for x in distribute.chunk_bounds(10, r, 4)) for r in range(4)]
    assert bounds == [(0, 3), (3, 6), (6, 9), (9, 10)]
    bounds = [tuple(int(x) for x in distribute.chunk_bounds(2, r, 4)) for r in range(4)]
    assert bounds == [(0, 1), (1, 2), (2, 2), (2, 2)]


def test_aggregate_is_identity_outside_replicas():
    t = tf.reshape(tf.range(6.0), [3, 2])
    assert distribute.aggregate(t) is t
    x = tf.ones([5, 2])
    assert distribute.local_chunk(x) is x


def test_default_strategy_without_gpus_or_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("GPUs visible")
    assert distribute.make_strategy(distribute=True) is tf.distribute.get_strategy()
