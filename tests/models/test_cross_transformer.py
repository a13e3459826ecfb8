"""CrossTransformer head against an independent float64 NumPy forward and analytic backward."""

import numpy as np
import pytest
import tensorflow as tf

from ctx_tf.models.blocked_attention import LIVE_ATTENTION_COPIES, BlockPlan
from ctx_tf.models.cross_transformer import CrossTransformer
from tests.models.helpers import random_episode


def numpy_ctx(fs, labels, fq, wk, wv, upstream):
    """float64 reference: logits [Nq, K] and the gradients of sum(upstream * logits).

    Written densely per class (explicit index sets, explicit softmax), independent of the
    chunked TF formulation.
    """
    fs, fq, wk, wv, upstream = (np.asarray(a, np.float64) for a in (fs, fq, wk, wv, upstream))
    wk, wv = wk[0, 0], wv[0, 0]
    ns, h, w, _ = fs.shape
    nq, hq, wq, _ = fq.shape
    m, p = h * w, hq * wq
    scale = 1.0 / np.sqrt(wk.shape[1])
    k = fs.reshape(ns, m, -1) @ wk  # [Ns, M, dk]
    v = fs.reshape(ns, m, -1) @ wv
    q = fq.reshape(nq, p, -1) @ wk  # [Nq, P, dk]
    u = fq.reshape(nq, p, -1) @ wv
    num_classes = labels.max() + 1
    logits = np.zeros((nq, num_classes))
    d_logits = upstream
    dk, dv, dq, du = (np.zeros_like(a) for a in (k, v, q, u))
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        kc = k[idx].reshape(-1, k.shape[-1])  # [Sc, dk]
        vc = v[idx].reshape(-1, v.shape[-1])
        a = scale * np.einsum("ipd,sd->ips", q, kc)  # [Nq, P, Sc]
        a = a - a.max(axis=2, keepdims=True)
        alpha = np.exp(a) / np.exp(a).sum(axis=2, keepdims=True)
        t = alpha @ vc  # [Nq, P, dv]
        diff = u - t
        dist = (diff**2).sum(axis=2).mean(axis=1)
        logits[:, c] = -dist
        # Backward of logits[:, c] = -mean_p sum_d (u - t)^2.
        g = -d_logits[:, c][:, None, None] * 2.0 * diff / p  # d/du
        du += g
        dt = -g
        dalpha = dt @ vc.T  # [Nq, P, Sc]
        dvc = np.einsum("ips,ipd->sd", alpha, dt)
        da = alpha * (dalpha - (alpha * dalpha).sum(axis=2, keepdims=True))
        dkc = scale * np.einsum("ips,ipd->sd", da, q)
        dq += scale * np.einsum("ips,sd->ipd", da, kc)
        dk[idx] += dkc.reshape(len(idx), m, -1)
        dv[idx] += dvc.reshape(len(idx), m, -1)
    fs2, fq2 = fs.reshape(ns, m, -1), fq.reshape(nq, p, -1)
    d_wk = np.einsum("nmc,nmd->cd", fs2, dk) + np.einsum("nmc,nmd->cd", fq2, dq)
    d_wv = np.einsum("nmc,nmd->cd", fs2, dv) + np.einsum("nmc,nmd->cd", fq2, du)
    d_fs = (dk @ wk.T + dv @ wv.T).reshape(fs.shape)
    d_fq = (dq @ wk.T + du @ wv.T).reshape(fq.shape)
    return logits, d_fs, d_fq, d_wk[None, None], d_wv[None, None]


def tf_logits_and_grads(layer, fs, labels, fq, upstream):
    fs, fq = tf.constant(fs), tf.constant(fq)
    with tf.GradientTape() as tape:
        tape.watch([fs, fq])
        logits = layer(fs, tf.constant(labels), fq)
        objective = tf.reduce_sum(logits * upstream)
    grads = tape.gradient(objective, [fs, fq, layer.key_kernel, layer.value_kernel])
    return [logits.numpy()] + [g.numpy() for g in grads]


def assert_close(actual, expected, rtol=2e-5, name=""):
    # Relative to the tensor's scale: float32 accumulations of O(1) terms.
    scale = max(np.abs(expected).max(), 1e-6)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale, err_msg=name)


@pytest.mark.compat
@pytest.mark.parametrize("rematerialize,chunk", [(False, None), (True, 2)])
def test_logits_and_gradients_match_numpy(rng_seed, rematerialize, chunk):
    rng = np.random.default_rng(rng_seed)
    fs, labels, fq = random_episode(rng, feature_scale=2.0)
    layer = CrossTransformer(query_dim=4, val_dim=5, rematerialize=rematerialize, query_chunk_size=chunk)
    layer.build(fs.shape)
    # Larger kernels than the 0.1 init so the attention is far from uniform.
    layer.set_weights([0.7 * rng.standard_normal(w.shape).astype(np.float32) for w in layer.get_weights()])
    upstream = rng.standard_normal((fq.shape[0], labels.max() + 1)).astype(np.float32)
    got = tf_logits_and_grads(layer, fs, labels, fq, upstream)
    wk, wv = layer.get_weights()
    expected = numpy_ctx(fs, labels, fq, wk, wv, upstream)
    for g, e, name in zip(got, expected, ["logits", "d_support", "d_query", "d_key_kernel", "d_value_kernel"]):
        assert g.shape == e.shape, name
        assert_close(g, e, rtol=5e-5, name=name)


def test_chunk_sizes_and_paths_agree(rng_seed):
    rng = np.random.default_rng(rng_seed)
    fs, labels, fq = random_episode(rng, num_classes=4, num_query=7)
    upstream = rng.standard_normal((7, 4)).astype(np.float32)
    results = []
    weights = None
    for rematerialize, chunk in [(False, None), (True, 1), (True, 3), (True, 7), (True, 100)]:
        layer = CrossTransformer(query_dim=8, val_dim=8, rematerialize=rematerialize, query_chunk_size=chunk)
        layer.build(fs.shape)
        if weights is None:
            weights = [rng.standard_normal(w.shape).astype(np.float32) for w in layer.get_weights()]
        layer.set_weights(weights)
        results.append(tf_logits_and_grads(layer, fs, labels, fq, upstream))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert_close(a, b, rtol=1e-5)


def numpy_check(layer, fs, labels, fq, upstream, rtol=5e-5):
    got = tf_logits_and_grads(layer, fs, labels, fq, upstream)
    expected = numpy_ctx(fs, labels, fq, *layer.get_weights(), upstream)
    for g, e, name in zip(got, expected, ["logits", "d_support", "d_query", "d_key_kernel", "d_value_kernel"]):
        assert g.shape == e.shape, name
        assert_close(g, e, rtol=rtol, name=name)


# 4 classes, 30 query rows, val_dim 5: prototypes 2880 bytes; attention 1080 bytes per support
# image (4-12 images); half the budget is kept.
@pytest.mark.parametrize("block_bytes,budget", [
    (4 * 9 * 5, 1 << 30),  # 5 rows per block: blocks end mid-query; everything kept
    (4 * 27 * 7, 1 << 30),  # 7 rows against the largest class (3 shots x 9 positions)
    (4, 1 << 30),  # one row per block
    (1 << 30, 1 << 30),  # one block per class
    (4 * 9 * 5, 2 * (2880 + 2000)),  # all prototypes kept, some attention blocks
    (4 * 9 * 5, 2 * 2000),  # some prototypes kept, no attention
    (4 * 9 * 5, 1),  # nothing kept, everything recomputed
    (1 << 30, 4096),  # the budget caps the block (4-14 rows); some prototypes kept
])
def test_blocked_head_matches_numpy(rng_seed, block_bytes, budget):
    """Blocks of query rows of any size, with attention and prototypes kept or recomputed, are
    exact."""
    rng = np.random.default_rng(rng_seed)
    fs, labels, fq = random_episode(rng, num_classes=4, num_query=5, feature_scale=2.0)
    layer = CrossTransformer(query_dim=4, val_dim=5, memory_budget_bytes=budget,
                             attention_block_bytes=block_bytes)
    layer.build(fs.shape)
    layer.set_weights([0.7 * rng.standard_normal(w.shape).astype(np.float32) for w in layer.get_weights()])
    upstream = rng.standard_normal((5, 4)).astype(np.float32)
    numpy_check(layer, fs, labels, fq, upstream)


def test_block_plan_from_budget_and_block():
    """63 support positions of one class, query images of 6 positions, 600 rows in all."""
    budget = 2 * LIVE_ATTENTION_COPIES * 4 * 63 * 6 * 2
    plan = CrossTransformer(memory_budget_bytes=budget, attention_block_bytes=1 << 30).block_plan()
    assert plan == BlockPlan(63 * 6 * 2, budget // 2)
    assert int(plan.block_rows(63, 600, 6)) == 2 * 6  # half the budget holds two queries' blocks
    assert int(plan.num_blocks(63, 600, 6)) == 50
    plan = CrossTransformer(attention_block_bytes=4 * 63 * 6 * 3).block_plan()
    assert int(plan.block_rows(63, 600, 6)) == 3 * 6  # the block target allows three
    assert int(plan.num_blocks(63, 601, 6)) == 34  # the last block is partial
    assert int(plan.block_rows(63, 10, 6)) == 10  # never more rows than there are
    assert int(plan.block_rows(10 ** 9, 600, 6)) == 1  # at least one row
    plan = CrossTransformer(query_chunk_size=5).block_plan()
    assert int(plan.block_rows(63, 600, 6)) == 5 * 6  # whole query images
    assert int(plan.block_rows(1, 600, 6)) == 5 * 6  # whatever the class size
    with pytest.raises(ValueError, match="attention_block_bytes"):
        CrossTransformer(attention_block_bytes=0)


@pytest.mark.slow
@pytest.mark.parametrize("budget", [1 << 30, 8000, 2048, 1])
def test_graph_mode_with_unknown_shapes_matches_numpy(rng_seed, budget):
    """Training graphs see episodes of any shape: class count, block rows and what is kept for
    the backward pass are all decided at run time (1 GiB keeps everything, 8000 bytes all or
    some prototypes, 2 KiB some prototypes, 1 byte nothing)."""
    rng = np.random.default_rng(rng_seed)
    layer = CrossTransformer(query_dim=8, val_dim=8, memory_budget_bytes=budget,
                             attention_block_bytes=4 * 9 * 4)
    layer.build((None, None, None, 6))
    layer.set_weights([0.5 * rng.standard_normal(w.shape).astype(np.float32) for w in layer.get_weights()])
    spec = [tf.TensorSpec([None, None, None, 6]), tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None, None, None, 6]), tf.TensorSpec([None, None])]

    @tf.function(input_signature=spec)
    def run(a, b, c, up):
        with tf.GradientTape() as tape:
            tape.watch([a, c])
            logits = layer(a, b, c)
            objective = tf.reduce_sum(logits * up)
        return [logits] + tape.gradient(objective, [a, c] + layer.trainable_variables)

    for num_classes, num_query in [(3, 5), (5, 2)]:  # two episode shapes, one trace
        fs, labels, fq = random_episode(rng, num_classes=num_classes, num_query=num_query)
        upstream = rng.standard_normal((num_query, num_classes)).astype(np.float32)
        got = [g.numpy() for g in run(fs, labels, fq, upstream)]
        expected = numpy_ctx(fs, labels, fq, *layer.get_weights(), upstream)
        for g, e, name in zip(got, expected, ["logits", "d_support", "d_query", "d_wk", "d_wv"]):
            assert_close(g, e, rtol=5e-5, name=name)
    assert run.experimental_get_tracing_count() == 1


def test_projections_with_one_hot_labels(rng_seed):
    """The distributed path: labels one-hot, keys/values from project()."""
    rng = np.random.default_rng(rng_seed)
    fs, labels, fq = random_episode(rng, num_classes=3, num_query=4)
    layer = CrossTransformer(query_dim=4, val_dim=4, attention_block_bytes=4 * 9 * 3)
    layer.build(fs.shape)
    sk, sv = layer.project(fs)
    qk, qv = layer.project(fq)
    by_int = layer.logits_from_projections(sk, sv, labels, qk, qv)
    by_one_hot = layer.logits_from_projections(sk, sv, tf.one_hot(labels, 3), qk, qv)
    assert_close(by_one_hot.numpy(), by_int.numpy(), rtol=1e-6)
    assert_close(by_int.numpy(), layer(fs, labels, fq).numpy(), rtol=1e-6)


def test_gin_binds_block_size(clean_gin):
    import gin

    with gin.unlock_config():
        gin.parse_config("CrossTransformer.attention_block_bytes = 12345")
    assert CrossTransformer().attention_block_bytes == 12345
    assert CrossTransformer().get_config()["attention_block_bytes"] == 12345


def test_large_scores_do_not_overflow(rng_seed):
    """Classes whose scores differ by hundreds still get a finite, exact softmax."""
    rng = np.random.default_rng(rng_seed)
    fs, labels, fq = random_episode(rng, num_classes=3, num_query=3, feature_scale=30.0)
    layer = CrossTransformer(query_dim=4, val_dim=4, query_chunk_size=2)
    layer.build(fs.shape)
    layer.set_weights([rng.standard_normal(w.shape).astype(np.float32) for w in layer.get_weights()])
    upstream = rng.standard_normal((3, 3)).astype(np.float32)
    got = tf_logits_and_grads(layer, fs, labels, fq, upstream)
    expected = numpy_ctx(fs, labels, fq, *layer.get_weights(), upstream)
    assert all(np.all(np.isfinite(g)) for g in got)
    # Scores of order 1e3-1e4: float32 rounding of the scores themselves sets the tolerance.
    assert_close(got[0], expected[0], rtol=1e-3)


@pytest.mark.compat
def test_variables_init_and_weight_decay(rng_seed):
    tf.random.set_seed(rng_seed % (2**31))
    layer = CrossTransformer(query_dim=128, val_dim=96, tformer_weight_decay=0.01)
    layer.build((2, 3, 3, 512))
    wk, wv = layer.get_weights()
    assert wk.shape == (1, 1, 512, 128) and wv.shape == (1, 1, 512, 96)
    assert "tformer_keys/weight" in layer.key_kernel.name
    assert "tformer_values/weight" in layer.value_kernel.name
    assert len(layer.trainable_weights) == 2  # no biases
    for w in (wk, wv):
        assert np.abs(w).max() <= 0.2 + 1e-6  # two-sigma truncation
        # std of a 2-sigma truncated normal(0, 0.1) is 0.0880.
        assert abs(w.std() - 0.0880) < 0.005
    expected = 0.01 * (np.sum(wk.astype(np.float64) ** 2) + np.sum(wv.astype(np.float64) ** 2))
    np.testing.assert_allclose(float(tf.add_n(layer.losses)), expected, rtol=1e-5)


def test_clear_errors():
    layer = CrossTransformer(query_dim=4, val_dim=4)
    with pytest.raises(ValueError, match="support_features"):
        layer(tf.zeros([2, 3, 4]), tf.constant([0, 1]), tf.zeros([1, 3, 3, 4]))
    with pytest.raises(ValueError, match="channels"):
        layer(tf.zeros([2, 3, 3, 4]), tf.constant([0, 1]), tf.zeros([1, 3, 3, 5]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="cover every class"):
        layer(tf.zeros([2, 3, 3, 4]), tf.constant([0, 2]), tf.zeros([1, 3, 3, 4]))
    with pytest.raises(ValueError, match="support labels"):
        layer(tf.zeros([2, 3, 3, 4]), tf.constant([0, 1, 1]), tf.zeros([1, 3, 3, 4]))
