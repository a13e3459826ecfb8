"""Episodic batch norm against float64 NumPy: support moments reused by queries, EMA, eval."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from ctx_tf.models.batch_norm import EpisodicBatchNorm
from tests.models.helpers import EPS, numpy_episodic_bn
from tests.scripts import TWO_CPUS

def assert_close(actual, expected, tol=3e-5):
    scale = max(np.abs(expected).max(), 1e-6)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tol * scale)


@pytest.mark.compat
def test_queries_use_support_moments_with_gradients(rng_seed):
    rng = np.random.default_rng(rng_seed)
    c = 5
    xs = (rng.standard_normal((4, 3, 2, c)) * 2.0 + rng.standard_normal(c)).astype(np.float32)
    xq = (rng.standard_normal((3, 3, 2, c)) * 3.0 - 1.0).astype(np.float32)
    gs = rng.standard_normal(xs.shape).astype(np.float32)
    gq = rng.standard_normal(xq.shape).astype(np.float32)
    bn = EpisodicBatchNorm()
    bn.build(xs.shape)
    gamma = rng.uniform(0.5, 2.0, c).astype(np.float32)
    beta = rng.standard_normal(c).astype(np.float32)
    bn.scale.assign(gamma.reshape(1, 1, 1, c))
    bn.offset.assign(beta.reshape(1, 1, 1, c))
    xs_t, xq_t = tf.constant(xs), tf.constant(xq)
    with tf.GradientTape() as tape:
        tape.watch([xs_t, xq_t])
        ys, moments = bn(xs_t, training=True)
        yq, query_moments = bn(xq_t, training=True, moments=moments)
        objective = tf.reduce_sum(ys * gs) + tf.reduce_sum(yq * gq)
    grads = tape.gradient(objective, [xs_t, xq_t, bn.scale, bn.offset])
    expected = numpy_episodic_bn(xs, xq, gamma, beta, gs, gq)
    assert_close(ys.numpy(), expected[0])
    assert_close(yq.numpy(), expected[1])
    assert_close(grads[0].numpy(), expected[2], tol=1e-4)  # cancellations through the moments
    assert_close(grads[1].numpy(), expected[3])
    assert_close(grads[2].numpy().reshape(c), expected[4])
    assert_close(grads[3].numpy().reshape(c), expected[5])
    assert_close(moments[0].numpy().reshape(c), expected[6])
    assert_close(moments[1].numpy().reshape(c), expected[7])
    assert query_moments[0] is moments[0]
    assert moments[0].shape == (1, 1, 1, c)


def test_ema_update_rule_and_eval_mode(rng_seed):
    rng = np.random.default_rng(rng_seed)
    c = 3
    bn = EpisodicBatchNorm()  # use_ema=True, decay 0.9 (CTX)
    batches = [(rng.standard_normal((5, 2, 2, c)) * s + s).astype(np.float32) for s in (1.0, 2.0)]
    mean_ema, var_ema = np.zeros(c), np.ones(c)
    for xs in batches:
        _, moments = bn(xs, training=True)
        mu = xs.astype(np.float64).mean(axis=(0, 1, 2))
        var = xs.astype(np.float64).var(axis=(0, 1, 2))
        mean_ema = 0.9 * mean_ema + 0.1 * mu
        var_ema = 0.9 * var_ema + 0.1 * var
        np.testing.assert_allclose(bn.mean_ema.numpy().reshape(c), mean_ema, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(bn.var_ema.numpy().reshape(c), var_ema, rtol=1e-5, atol=1e-6)
        # The query pass (moments given) leaves the EMA alone.
        bn(rng.standard_normal((2, 2, 2, c)).astype(np.float32), training=True, moments=moments)
        np.testing.assert_allclose(bn.mean_ema.numpy().reshape(c), mean_ema, rtol=1e-5, atol=1e-6)
    assert bn.mean_ema.shape == (1, 1, 1, c) and not bn.mean_ema.trainable

    # Evaluation: support and query normalized with the EMA; the EMA does not move.
    xs = rng.standard_normal((4, 2, 2, c)).astype(np.float32)
    xq = rng.standard_normal((3, 2, 2, c)).astype(np.float32)
    ys, moments = bn(xs, training=False)
    yq, _ = bn(xq, training=False, moments=moments)
    for x, y in ((xs, ys), (xq, yq)):
        expected = (x - mean_ema) / np.sqrt(var_ema + EPS)
        np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bn.var_ema.numpy().reshape(c), var_ema, rtol=1e-5, atol=1e-6)


def test_without_ema_eval_uses_batch_moments(rng_seed):
    rng = np.random.default_rng(rng_seed)
    xs = rng.standard_normal((4, 2, 2, 3)).astype(np.float32) * 3 + 1
    bn = EpisodicBatchNorm(use_ema=False)
    ys, _ = bn(xs, training=False)
    x64 = xs.astype(np.float64)
    expected = (x64 - x64.mean(axis=(0, 1, 2))) / np.sqrt(x64.var(axis=(0, 1, 2)) + EPS)
    np.testing.assert_allclose(ys.numpy(), expected, atol=1e-5)


def test_clear_errors():
    bn = EpisodicBatchNorm()
    with pytest.raises(ValueError, match="batch, height, width, channels"):
        bn(tf.zeros([2, 3]), training=True)
    bn(tf.zeros([2, 2, 2, 4]), training=True)
    with pytest.raises(ValueError, match="4 channels"):
        bn(tf.zeros([2, 2, 2, 5]), training=True)
    with pytest.raises(ValueError, match="moments have 3 channels"):
        bn(tf.zeros([2, 2, 2, 4]), training=True, moments=(tf.zeros([1, 1, 1, 3]), tf.ones([1, 1, 1, 3])))
    with pytest.raises(ValueError, match="ema_epsilon"):
        EpisodicBatchNorm(ema_epsilon=1.5)


_REPLICA_SCRIPT = TWO_CPUS + textwrap.dedent(
    """
    import sys
    import numpy as np
    from ctx_tf.models.batch_norm import EpisodicBatchNorm

    seed = int(sys.argv[1])
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((6, 2, 2, 3)) * 2 + 1).astype(np.float32)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        bn = EpisodicBatchNorm()
        bn.build(x.shape)
    # Unequal shares (4 and 2 images): the global moments must weight by counts.
    shares = [x[:4], x[4:]]

    @tf.function
    def run():
        def fn():
            ctx = tf.distribute.get_replica_context()
            local = tf.cond(ctx.replica_id_in_sync_group == 0,
                            lambda: tf.constant(shares[0]), lambda: tf.constant(shares[1]))
            _, moments = bn(local, training=True)
            return moments
        return strategy.run(fn)

    moments = run()
    mean0, mean1 = strategy.experimental_local_results(moments[0])
    var0, var1 = strategy.experimental_local_results(moments[1])
    x64 = x.astype(np.float64)
    mu, var = x64.mean(axis=(0, 1, 2)), x64.var(axis=(0, 1, 2))
    for m in (mean0, mean1):
        np.testing.assert_allclose(m.numpy().reshape(3), mu, rtol=1e-5, atol=1e-5)
    for v in (var0, var1):
        np.testing.assert_allclose(v.numpy().reshape(3), var, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bn.mean_ema.numpy().reshape(3), 0.1 * mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.var_ema.numpy().reshape(3), 0.9 + 0.1 * var, rtol=1e-5, atol=1e-6)
    print("OK")
    """
)


@pytest.mark.slow
def test_moments_are_global_across_replicas(rng_seed):
    """Two CPU replicas with unequal shares: every replica sees the moments of the union."""
    result = subprocess.run(
        [sys.executable, "-c", _REPLICA_SCRIPT, str(rng_seed)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]
