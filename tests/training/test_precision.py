"""`compute.policy`: mixed-precision training and loading, float32 variables, loss scaling;
`compute.jit_compile`: XLA gives the plain path's logits, loss and gradients."""

import functools
import textwrap

import gin
import numpy as np
import pytest
import tensorflow as tf

from ctx_tf import compute
from ctx_tf import distribute as distribute_lib
from ctx_tf import learners
from ctx_tf import official_checkpoint as oc
from ctx_tf.keras import keras
from ctx_tf.learners import CrossTransformerLearner
from ctx_tf.models import backbones
from ctx_tf.training import step as step_lib
from tests.scripts import TWO_CPUS, run_script, script_result
from tests.training.helpers import IMAGE_SIZE, make_episode, make_trainer, toy_learner


@pytest.fixture
def policy(clean_gin):
    """Binds `compute.policy` for one test; gin and the global policy are reset after it."""
    def bind(name):
        gin.bind_parameter("compute.policy", name)
    yield bind
    assert keras.mixed_precision.global_policy().name == "float32"


def assert_float32_variables(learner):
    assert learner.variables
    for v in learner.variables:
        assert v.dtype == tf.float32, v.name


def test_unknown_policy_names_the_binding():
    with pytest.raises(compute.ComputeError, match="compute.policy .*'mixed_bf16'"):
        compute.options(policy="mixed_bf16")
    with pytest.raises(compute.ComputeError, match="compute.jit_compile"):
        compute.options(jit_compile="yes")


def test_policy_scope_restores_the_previous_policy():
    with compute.policy_scope("mixed_bfloat16"):
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        with pytest.raises(RuntimeError):
            with compute.policy_scope("mixed_float16"):
                raise RuntimeError
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"


def test_bfloat16_training_decreases_the_loss_with_float32_variables(tmp_path, policy):
    policy("mixed_bfloat16")
    trainer = make_trainer(tmp_path, learning_rate=3e-3, decay_learning_rate=False)
    assert keras.mixed_precision.global_policy().name == "float32"
    assert trainer.learner.backbone.compute_dtype == "bfloat16"
    assert trainer.learner.head.compute_dtype == "bfloat16"
    assert not isinstance(trainer.updater.optimizer, keras.mixed_precision.LossScaleOptimizer)
    episode = make_episode(np.random.RandomState(0))
    losses = [trainer.updater.train_on_episode(episode)["loss"] for _ in range(8)]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.7 * losses[0], losses
    assert_float32_variables(trainer.learner)
    logits = trainer.predict_fn(episode)[0]
    assert logits.dtype == tf.float32


def test_float16_loss_scaling_skips_an_overflow_step(tmp_path, policy):
    policy("mixed_float16")
    trainer = make_trainer(tmp_path, learning_rate=3e-3, decay_learning_rate=False)
    assert trainer.learner.backbone.compute_dtype == "float16"
    assert isinstance(trainer.updater.optimizer, keras.mixed_precision.LossScaleOptimizer)
    episode = make_episode(np.random.RandomState(0))
    first = trainer.updater.train_on_episode(episode)
    assert first["skipped"] == 0.0 and np.isfinite(first["grad_norm"])

    # A scale of 2^100 overflows the float16 gradients (max 65504) on the way back.
    trainer.updater.optimizer._loss_scale.current_loss_scale.assign(2.0 ** 100)
    before = [v.numpy() for v in trainer.learner.trainable_variables]
    out = trainer.updater.train_on_episode(episode)
    assert out["skipped"] == 1.0 and np.isfinite(out["loss"])
    assert out["loss_scale"] == 2.0 ** 99
    for b, v in zip(before, trainer.learner.trainable_variables):
        np.testing.assert_array_equal(b, v.numpy(), err_msg=v.name)

    trainer.updater.optimizer._loss_scale.current_loss_scale.assign(2.0 ** 8)
    losses = [trainer.updater.train_on_episode(episode) for _ in range(6)]
    assert all(o["skipped"] == 0.0 for o in losses)
    assert losses[-1]["loss"] < first["loss"]
    for v in trainer.learner.variables:
        assert v.dtype == tf.float32 and np.all(np.isfinite(v.numpy())), v.name


def test_official_checkpoint_loads_unchanged_into_a_bfloat16_learner(tmp_path, policy):
    embedding_fn = functools.partial(backbones.FourLayerConvNet, depth=8)
    make = functools.partial(CrossTransformerLearner, embedding_fn=embedding_fn,
                             query_dim=16, val_dim=16)
    reference = learners.build_learner(learner_class=make, image_size=IMAGE_SIZE)
    episode = make_episode(np.random.RandomState(1))
    reference(episode, training=True)  # non-trivial batch-norm EMAs
    prefix = oc.save_official_checkpoint(reference, str(tmp_path / "model.ckpt"))

    policy("mixed_bfloat16")
    low = learners.build_learner(learner_class=make, image_size=IMAGE_SIZE)
    assert low.backbone.compute_dtype == "bfloat16"
    assert oc.load_official_checkpoint(low, prefix).ok
    assert_float32_variables(low)
    for a, b in zip(reference.variables, low.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.name)
    want = reference(episode, training=False).logits.numpy()
    got = low(episode, training=False).logits.numpy()
    # Four conv layers and the head, each rounding to bf16 (u = 2^-8), at 32u of the scale.
    np.testing.assert_allclose(got, want, rtol=0, atol=32 * 2.0 ** -8 * np.abs(want).max())


def dense_learner():
    """The toy CTX learner with the dense head, which XLA compiles."""
    learner = toy_learner()
    learner.head.rematerialize = False
    return learner


@pytest.mark.slow  # two XLA compilations: ~40 s on this busy machine
def test_jit_compile_equals_the_plain_path():
    learner = dense_learner()
    episode = make_episode(np.random.RandomState(2), way=3, shot=3, query=2)
    learner(episode, training=False)
    strategy = tf.distribute.get_strategy()
    signature = distribute_lib.episode_signature(episode)
    # Every prediction before any gradient: a training-mode pass moves the batch-norm EMAs.
    results = {jit: [distribute_lib.make_predict_fn(strategy, learner, jit_compile=jit)(episode)[0]]
               for jit in (False, True)}
    for jit in (False, True):
        gradient_fn = step_lib.make_gradient_fn(strategy, learner, signature, jit_compile=jit)
        results[jit] += list(gradient_fn(episode))
    names = ["logits", "loss"] + [v.name for v in learner.trainable_variables]
    for name, plain, xla in zip(names, results[False], results[True]):
        plain, xla = np.asarray(plain, np.float64), np.asarray(xla, np.float64)
        # Float32 roundings of a few hundred fused ops, relative to the array's scale.
        np.testing.assert_allclose(xla, plain, rtol=0, atol=1e-4 * max(np.abs(plain).max(), 1e-6),
                                   err_msg=name)


def test_jit_compile_rejects_the_rematerialized_head():
    learner = toy_learner()
    with pytest.raises(compute.ComputeError, match="CrossTransformerLearner.rematerialize"):
        distribute_lib.make_predict_fn(tf.distribute.get_strategy(), learner, jit_compile=True)


MIRRORED_SCRIPT = TWO_CPUS + textwrap.dedent("""
    import json, pathlib, sys
    import gin
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from tests.training.helpers import evaluate_episode, make_episode, make_trainer
    tmp = pathlib.Path(sys.argv[2])
    out = {}
    # One policy per process (argv[3]): two MirroredStrategy objects in one process share
    # collective keys.
    for policy in [sys.argv[3]]:
        gin.bind_parameter("compute.policy", policy)
        trainers = [make_trainer(tmp / policy / "one", strategy=tf.distribute.get_strategy(),
                                 learning_rate=3e-3, decay_learning_rate=False),
                    make_trainer(tmp / policy / "two", learning_rate=3e-3,
                                 decay_learning_rate=False,
                                 strategy=tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))]
        gin.clear_config()
        # 9 support images and 6 queries: chunks of 5 + 4 and 3 + 3.
        episode = make_episode(np.random.RandomState(0), way=3, shot=3, query=2)
        for t in trainers:
            t.updater.ensure_variables(episode)
        for a, b in zip(trainers[0].learner.variables, trainers[1].learner.variables):
            b.assign(a.numpy())
        out[policy] = dict(
            losses=[[t.updater.train_on_episode(episode)["loss"] for _ in range(5)]
                    for t in trainers],
            dtypes=sorted({v.dtype.name for v in trainers[1].learner.variables}),
            compute=trainers[1].learner.backbone.compute_dtype,
            eval=[evaluate_episode(t, episode)[1] for t in trainers])
    print("RESULT " + json.dumps(out))
""")


@pytest.mark.slow  # a subprocess with two logical CPUs: ~40 s
@pytest.mark.parametrize("policy,low", [("mixed_bfloat16", "bfloat16"),
                                        ("mixed_float16", "float16")])
def test_two_replicas_train_in_mixed_precision_as_one_device(tmp_path, policy, low):
    # The script's third argument is the policy.
    result = script_result(run_script(MIRRORED_SCRIPT, tmp_path, policy))[policy]
    assert result["dtypes"] == ["float32"] and result["compute"] == low
    one, two = result["losses"]
    assert two[-1] < 0.7 * two[0], result
    # Replicas round differently (their own chunks' batch sizes); the first loss is the
    # same model on the same images, at the low dtype's error of a few dozen roundings.
    assert two[0] == pytest.approx(one[0], rel=0.05)
    assert result["eval"][1] == pytest.approx(result["eval"][0], rel=0.1)
