"""CrossTransformer.attention_weights against an independent float64 NumPy reference."""

import numpy as np
import pytest
import tensorflow as tf

from ctx_tf.models.cross_transformer import CrossTransformer
from tests.models.helpers import random_episode


def numpy_attention(fs, labels, fq, wk, wv):
    """float64 [Nq, P, Ns, M]: each query position's softmax over every class's shots x
    positions, written per (query, position, class) with explicit loops over classes."""
    fs, fq, wk, wv = (np.asarray(a, np.float64) for a in (fs, fq, wk, wv))
    wk, wv = wk[0, 0], wv[0, 0]
    ns, nq = fs.shape[0], fq.shape[0]
    k = fs.reshape(ns, -1, fs.shape[-1]) @ wk  # [Ns, M, dk]
    q = fq.reshape(nq, -1, fq.shape[-1]) @ wk  # [Nq, P, dk]
    weights = np.zeros((nq, q.shape[1], ns, k.shape[1]))
    for c in range(labels.max() + 1):
        idx = np.flatnonzero(labels == c)
        scores = np.einsum("ipd,nmd->ipnm", q, k[idx]) / np.sqrt(wk.shape[1])
        scores -= scores.max(axis=(2, 3), keepdims=True)
        e = np.exp(scores)
        weights[:, :, idx] = e / e.sum(axis=(2, 3), keepdims=True)
    return weights


def numpy_logits_from_weights(weights, labels, support_values, query_values):
    """-mean_r ||u_r - t_c[r]||^2 with t_c[r] = sum over class c's (n, m) of w * v, float64."""
    weights, sv, qv = (np.asarray(a, np.float64) for a in (weights, support_values, query_values))
    logits = np.zeros((weights.shape[0], labels.max() + 1))
    for c in range(logits.shape[1]):
        idx = np.flatnonzero(labels == c)
        t = np.einsum("irnm,nmd->ird", weights[:, :, idx], sv[idx])
        logits[:, c] = -((qv - t) ** 2).sum(axis=2).mean(axis=1)
    return logits


@pytest.mark.parametrize("as_tensor", [False, True])
def test_attention_weights_match_numpy_and_give_the_logits(rng_seed, as_tensor):
    rng = np.random.default_rng(rng_seed)
    fs, labels, fq = random_episode(rng, num_classes=3, num_query=6, feature_scale=2.0)
    layer = CrossTransformer(query_dim=4, val_dim=5, attention_block_bytes=4 * 9 * 4)
    layer.build(fs.shape)
    layer.set_weights([0.7 * rng.standard_normal(w.shape).astype(np.float32)
                       for w in layer.get_weights()])
    chosen = [4, 0, 4]  # any order, repeats allowed
    indices = tf.constant(chosen, tf.int64) if as_tensor else chosen
    result = layer.attention_weights(fs, labels, fq, indices)
    weights = result.weights.numpy()
    num_support, support_positions = fs.shape[0], fs.shape[1] * fs.shape[2]
    assert weights.dtype == np.float32
    assert weights.shape == (3, fq.shape[1] * fq.shape[2], num_support, support_positions)
    expected = numpy_attention(fs, labels, fq[chosen], *layer.get_weights())
    np.testing.assert_allclose(weights, expected, rtol=0, atol=2e-6)
    for c in range(labels.max() + 1):
        class_sums = weights[:, :, labels == c].sum(axis=(2, 3))
        np.testing.assert_allclose(class_sums, 1.0, rtol=0, atol=1e-5)

    # The logits recomputed from the weights alone (and the projected values) are the layer's.
    _, support_values = layer.project(fs)
    sv = support_values.numpy().reshape(num_support, support_positions, -1)
    np.testing.assert_allclose(result.support_values.numpy(), sv, rtol=0, atol=1e-6)
    logits = layer(fs, labels, fq).numpy()[chosen]
    recomputed = numpy_logits_from_weights(weights, labels, sv, result.query_values.numpy())
    scale = np.abs(logits).max()
    np.testing.assert_allclose(recomputed, logits, rtol=0, atol=2e-5 * scale)
    np.testing.assert_allclose(result.logits.numpy(), logits, rtol=0, atol=2e-5 * scale)
    for c in range(labels.max() + 1):  # prototypes are the weighted class values
        t = np.einsum("irnm,nmd->ird", weights[:, :, labels == c], sv[labels == c])
        np.testing.assert_allclose(result.prototypes.numpy()[:, :, c], t, rtol=0,
                                   atol=2e-5 * np.abs(t).max())


def test_attention_weights_in_a_graph_and_bad_indices(rng_seed):
    rng = np.random.default_rng(rng_seed)
    fs, labels, fq = random_episode(rng, num_classes=2, num_query=3)
    layer = CrossTransformer(query_dim=4, val_dim=4)
    eager = layer.attention_weights(fs, labels, fq, [2]).weights
    graph = tf.function(lambda i: layer.attention_weights(fs, labels, fq, i).weights)(
        tf.constant([2]))
    np.testing.assert_allclose(graph.numpy(), eager.numpy(), rtol=0, atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="query_indices"):
        layer.attention_weights(fs, labels, fq, [3])
    with pytest.raises(tf.errors.InvalidArgumentError, match="query_indices"):
        layer.attention_weights(fs, labels, fq, [-1])
