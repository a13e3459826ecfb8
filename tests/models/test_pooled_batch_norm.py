"""Pool-before-normalize (ConvBN with `pool`) against the official order in float64 NumPy.

The backbones compute `relu(maxpool(BN(conv(x))))` as `relu(BN'(maxpool(conv'(x))))` with the
batch norm's channel signs folded into the kernel. The reference below is the official order,
written independently in float64; gradients are central differences of it, element by element.
Scales are drawn with both signs, so the sign folding is exercised. Every random value comes from
the printed seed, and inputs are redrawn while a ReLU input or a max-pool's runner-up lies within
KINK_MARGIN of the deciding value: there float32 and float64 (or a central difference) may take
different branches of a piecewise-linear function, which says nothing about the code under test.
"""

import numpy as np
import pytest
import tensorflow as tf

from ctx_tf.models import backbones

EPS = 1e-5
KINK_MARGIN = 1e-4


def _same_pads(size, window, stride):
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


def np_conv(x, w, stride):
    """TF `SAME` convolution, [N, H, W, Cin] x [k, k, Cin, Cout]."""
    k = w.shape[0]
    (t, b), (l, r) = _same_pads(x.shape[1], k, stride), _same_pads(x.shape[2], k, stride)
    xp = np.pad(x, [(0, 0), (t, b), (l, r), (0, 0)])
    patches = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(1, 2))
    patches = patches[:, ::stride, ::stride]  # [N, H', W', Cin, k, k]
    return np.einsum("nhwcab,abco->nhwo", patches, w)


def np_pool_windows(x, window, stride, padding):
    """The max-pool's windows, flattened on the last axis: [N, H', W', C, window * window]."""
    if padding == "SAME":
        (t, b), (l, r) = _same_pads(x.shape[1], window, stride), _same_pads(x.shape[2], window, stride)
        x = np.pad(x, [(0, 0), (t, b), (l, r), (0, 0)], constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(x, (window, window), axis=(1, 2))
    windows = windows[:, ::stride, ::stride]
    return windows.reshape(windows.shape[:4] + (-1,))


def np_layer(x, w, gamma, beta, stride, pool, moments=None, kinks=None):
    """Official order: conv -> BN (batch moments, or the given ones) -> ReLU -> max-pool.

    With `kinks` (a list), appends the distance of this layer's values to the nearest branch
    point: a ReLU input to zero, or a positive max-pool winner to its window's runner-up."""
    y = np_conv(x, w, stride)
    if moments is None:
        moments = (y.mean(axis=(0, 1, 2)), (y**2).mean(axis=(0, 1, 2)) - y.mean(axis=(0, 1, 2))**2)
    mean, var = moments
    pre = (y - mean) / np.sqrt(var + EPS) * gamma + beta
    windows = np_pool_windows(np.maximum(pre, 0.0), *pool)
    if kinks is not None:
        kinks.append(np.abs(pre).min())
        top = np.sort(windows, axis=-1)
        decided = top[..., -1] > 0
        if decided.any():
            kinks.append((top[..., -1] - top[..., -2])[decided].min())
    return windows.max(axis=-1), moments


def np_kink_distance(params, support, query, stride, pool):
    kinks = []
    s, q = support, query
    for w, gamma, beta in params:
        s, moments = np_layer(s, w, gamma, beta, stride, pool, kinks=kinks)
        q, _ = np_layer(q, w, gamma, beta, stride, pool, moments, kinks=kinks)
    return min(kinks)


def np_objective(params, support, query, gs, gq, stride, pool):
    """sum(gs * support features) + sum(gq * query features), queries with support moments."""
    s, q = support, query
    for w, gamma, beta in params:
        s, moments = np_layer(s, w, gamma, beta, stride, pool)
        q, _ = np_layer(q, w, gamma, beta, stride, pool, moments)
    return float(np.sum(gs * s) + np.sum(gq * q)), s, q


def numeric_gradients(params, *args, h=1e-6):
    grads = []
    for layer in params:
        layer_grads = []
        for array in layer:
            g = np.zeros_like(array)
            for index in np.ndindex(array.shape):
                keep = array[index]
                array[index] = keep + h
                up = np_objective(params, *args)[0]
                array[index] = keep - h
                down = np_objective(params, *args)[0]
                array[index] = keep
                g[index] = (up - down) / (2 * h)
            layer_grads.append(g)
        grads.append(layer_grads)
    return grads


def signed_scales(rng, channels):
    scales = rng.uniform(0.3, 1.5, channels) * rng.choice([-1.0, 1.0], channels)
    scales[0], scales[1] = -abs(scales[0]), abs(scales[1])  # both signs, always
    return scales


def assert_close(actual, expected, tol):
    scale = max(np.abs(expected).max(), 1e-6)
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=0, atol=tol * scale)


@pytest.mark.parametrize("case", ["four_layer_convnet", "resnet_stem"])
def test_pooled_conv_bn_matches_the_official_order_with_gradients(rng_seed, case):
    rng = np.random.default_rng(rng_seed)
    if case == "four_layer_convnet":
        net = backbones.FourLayerConvNet(depth=4, keep_spatial_dims=True)
        layers, stride, pool, size = net.layers_, 1, (2, 2, "VALID"), 16
        run = net
    else:
        stem = backbones.ConvBN(7, 4, stride=2, scope="stem", name="stem")
        layers, stride, pool, size = [stem], 2, (3, 2, "SAME"), 14

        def run(images, training, moments=None):
            given = None if moments is None else moments["stem"]
            out, found = stem(images, training=training, moments=given, pool=backbones.STEM_POOL)
            return tf.nn.relu(out), {"stem": found}
    out_shape = run(tf.zeros((3, size, size, 3)), training=True)[0].shape  # builds the layers
    params = []
    for layer in layers:
        fan_in = np.prod(layer.kernel.shape[:-1])
        layer.kernel.assign(rng.normal(0.0, np.sqrt(2.0 / fan_in), layer.kernel.shape))
        w = layer.kernel.numpy().astype(np.float64)
        gamma = signed_scales(rng, w.shape[-1])
        beta = rng.normal(0.0, 0.3, w.shape[-1])
        layer.bn.scale.assign(gamma.reshape(1, 1, 1, -1))
        layer.bn.offset.assign(beta.reshape(1, 1, 1, -1))
        params.append([w, layer.bn.scale.numpy().astype(np.float64).reshape(-1),
                       layer.bn.offset.numpy().astype(np.float64).reshape(-1)])
    for _ in range(100):
        support = rng.uniform(-1, 1, (3, size, size, 3)).astype(np.float32).astype(np.float64)
        query = rng.uniform(-1, 1, (2, size, size, 3)).astype(np.float32).astype(np.float64)
        if np_kink_distance(params, support, query, stride, pool) > KINK_MARGIN:
            break
    else:
        pytest.fail("no inputs away from the ReLU and max-pool kinks in 100 draws")
    support_t, query_t = tf.constant(support, tf.float32), tf.constant(query, tf.float32)
    gs = rng.standard_normal(out_shape)
    gq = rng.standard_normal([2] + list(out_shape[1:]))
    for layer in layers:  # the build call moved the EMAs
        layer.bn.mean_ema.assign(tf.zeros_like(layer.bn.mean_ema))
        layer.bn.var_ema.assign(tf.ones_like(layer.bn.var_ema))
    variables = [v for layer in layers for v in (layer.kernel, layer.bn.scale, layer.bn.offset)]
    with tf.GradientTape() as tape:
        fs, moments = run(support_t, training=True)
        fq, _ = run(query_t, training=True, moments=moments)
        objective = tf.reduce_sum(fs * gs) + tf.reduce_sum(fq * gq)
    grads = tape.gradient(objective, variables)

    args = (support, query, gs, gq, stride, pool)
    value, ref_s, ref_q = np_objective(params, *args)
    assert_close(fs.numpy(), ref_s, 1e-5)
    assert_close(fq.numpy(), ref_q, 1e-5)
    # The returned moments are those of the unsigned convolution, as without pooling; so
    # are the EMAs (one update from 0 and 1 with decay 0.9).
    s = support
    for layer, (w, gamma, beta) in zip(layers, params):
        y = np_conv(s, w, stride)
        mean, var = y.mean(axis=(0, 1, 2)), y.var(axis=(0, 1, 2))
        got_mean, got_var = (m.numpy().reshape(-1) for m in moments[layer.scope])
        assert_close(got_mean, mean, 1e-5)
        assert_close(got_var, var, 1e-5)
        assert_close(layer.bn.mean_ema.numpy().reshape(-1), 0.1 * mean, 1e-5)
        assert_close(layer.bn.var_ema.numpy().reshape(-1), 0.9 + 0.1 * var, 1e-5)
        s, _ = np_layer(s, w, gamma, beta, stride, pool)
    expected = numeric_gradients(params, *args)
    for got, want in zip(grads, [g for layer in expected for g in layer]):
        assert_close(got.numpy().reshape(want.shape), want, 2e-4)


def test_pooled_eval_mode_uses_the_signed_emas(rng_seed):
    """Evaluation (EMA moments) through the pooled path equals the official order in NumPy."""
    rng = np.random.default_rng(rng_seed)
    net = backbones.FourLayerConvNet(depth=3, keep_spatial_dims=True)
    images = rng.uniform(-1, 1, (2, 16, 16, 3))
    net(tf.constant(images, tf.float32), training=False)
    x = images
    for layer in net.layers_:
        gamma = signed_scales(rng, 3)
        beta = rng.normal(0.0, 0.3, 3)
        mean, var = rng.normal(0.0, 0.5, 3), rng.uniform(0.2, 2.0, 3)
        for v, value in ((layer.bn.scale, gamma), (layer.bn.offset, beta),
                         (layer.bn.mean_ema, mean), (layer.bn.var_ema, var)):
            v.assign(value.reshape(1, 1, 1, 3))
        x, _ = np_layer(x, layer.kernel.numpy().astype(np.float64),
                        layer.bn.scale.numpy().astype(np.float64).reshape(-1),
                        beta, 1, (2, 2, "VALID"),
                        (layer.bn.mean_ema.numpy().astype(np.float64).reshape(-1),
                         layer.bn.var_ema.numpy().astype(np.float64).reshape(-1)))
    got, _ = net(tf.constant(images, tf.float32), training=False)
    # The layers' outputs are O(1) whatever the final ones are: an absolute float32 bound.
    np.testing.assert_allclose(got.numpy(), x, rtol=1e-5, atol=1e-6)
