"""Mixed precision: low-precision compute, float32 variables, statistics and logits.

Tolerances: one rounding to bfloat16 (8-bit significand) is a relative error up to the unit
roundoff u = 2^-8 ~ 3.9e-3, to float16 (11 bits) u = 2^-11 ~ 4.9e-4. Inputs, kernels and every
intermediate result are rounded, and independent rounding errors add up roughly in quadrature
over a few dozen of them, so the head's outputs are compared at 8u of their scale (3.1e-2 and
3.9e-3) and deep backbones' at 32u.
"""

import contextlib

import numpy as np
import pytest
import tensorflow as tf

from ctx_tf.keras import keras
from ctx_tf.models.backbones import ResNet, four_layer_convnet, resnet34
from ctx_tf.models.batch_norm import EpisodicBatchNorm
from ctx_tf.models.cross_transformer import CrossTransformer
from ctx_tf.models.prototypical import class_prototypes, prototype_logits
from tests.models.helpers import numpy_episodic_bn, random_episode

UNIT_ROUNDOFF = {tf.bfloat16: 2.0 ** -8, tf.float16: 2.0 ** -11}
POLICIES = [("mixed_bfloat16", tf.bfloat16, 8 * UNIT_ROUNDOFF[tf.bfloat16]),
            ("mixed_float16", tf.float16, 8 * UNIT_ROUNDOFF[tf.float16])]


@contextlib.contextmanager
def global_policy(name):
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def assert_near(actual, expected, tolerance, name):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert np.all(np.isfinite(actual)), name
    scale = np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tolerance * scale, err_msg=name)


def assert_float32_variables(layer):
    assert layer.weights
    for v in layer.weights:
        assert v.dtype == tf.float32, v.name


def head_logits_and_grads(layer, fs, labels, fq, upstream):
    fs, fq = tf.constant(fs), tf.constant(fq)
    with tf.GradientTape() as tape:
        tape.watch([fs, fq])
        logits = layer(fs, labels, fq)
        objective = tf.reduce_sum(logits * upstream)
    return logits, tape.gradient(objective, [fs, fq] + layer.trainable_variables)


def rounded_to(x, low):
    return tf.cast(tf.cast(x, low), tf.float32).numpy()


@pytest.mark.parametrize("policy,low,tolerance", POLICIES)
@pytest.mark.parametrize("rematerialize", [True, False])
def test_head_under_mixed_policy(rng_seed, policy, low, tolerance, rematerialize):
    """Logits within 8u of their scale. Gradients through a sharp softmax are more sensitive,
    so their tolerance is calibrated on the float32 layer: at most 16x the error of the float32
    layer whose features and kernels alone are rounded once to the low dtype (the mixed layer
    also rounds keys, values, scores and exp; measured up to ~7x)."""
    rng = np.random.default_rng(rng_seed)
    fs, labels, fq = random_episode(rng, num_classes=3, num_query=4, feature_scale=2.0)
    upstream = rng.standard_normal((4, 3)).astype(np.float32)
    # Small blocks with nothing kept: the recomputing backward pass is exercised too.
    kwargs = dict(query_dim=8, val_dim=8, rematerialize=rematerialize,
                  attention_block_bytes=4 * 9 * 5, memory_budget_bytes=1)
    reference = CrossTransformer(**kwargs)
    reference.build(fs.shape)
    weights = [0.5 * rng.standard_normal(w.shape).astype(np.float32)
               for w in reference.get_weights()]
    reference.set_weights(weights)
    expected, expected_grads = head_logits_and_grads(reference, fs, labels, fq, upstream)
    reference.set_weights([rounded_to(w, low) for w in weights])
    _, perturbed_grads = head_logits_and_grads(
        reference, rounded_to(fs, low), labels, rounded_to(fq, low), upstream)
    with global_policy(policy):
        layer = CrossTransformer(**kwargs)
        layer.build(fs.shape)
        layer.set_weights(weights)
        assert_float32_variables(layer)
        keys, _ = layer.project(fs)
        assert keys.dtype == low
        logits, grads = head_logits_and_grads(layer, fs, labels, fq, upstream)
        chosen = layer.attention_weights(fs, labels, fq, [1])
    assert logits.dtype == tf.float32 and chosen.logits.dtype == tf.float32
    assert_near(logits, expected, tolerance, "logits")
    assert_near(chosen.logits, expected.numpy()[[1]], tolerance, "chosen logits")
    for g, e, p, name in zip(grads, expected_grads, perturbed_grads,
                             ["d_support", "d_query", "d_wk", "d_wv"]):
        assert g.dtype == tf.float32 and np.all(np.isfinite(g.numpy())), name
        assert relative_error([g], [e]) <= 16 * relative_error([p], [e]), name


@pytest.mark.parametrize("policy,low,tolerance", POLICIES)
def test_batch_norm_moments_are_float32(rng_seed, policy, low, tolerance):
    """A mean far from zero: E[x^2] - E[x]^2 in 8 or 11 bits would lose the variance (x^2 ~ 900
    is rounded to within 3.5 in bfloat16, 0.44 in float16), in float32 to within 5e-5."""
    rng = np.random.default_rng(rng_seed)
    mean_value = 30.0
    x = (mean_value + rng.standard_normal((4, 5, 5, 3))).astype(np.float32)
    with global_policy(policy):
        bn = EpisodicBatchNorm()
        x_low = tf.cast(x, low)
        outputs, (mean, variance) = bn(x_low, training=True)
        query, _ = bn(x_low[:2], training=True, moments=(mean, variance))
        evaluated, (ema_mean, _) = bn(x_low, training=False)
    assert_float32_variables(bn)
    assert mean.dtype == variance.dtype == ema_mean.dtype == tf.float32
    assert outputs.dtype == query.dtype == evaluated.dtype == low
    x64 = tf.cast(x_low, tf.float64).numpy()  # the inputs the layer saw
    np.testing.assert_allclose(mean.numpy().ravel(), x64.mean(axis=(0, 1, 2)), rtol=1e-6)
    # float32's cancellation: a few roundings of E[x^2] (unit roundoff 2^-24), 16x margin.
    np.testing.assert_allclose(variance.numpy().ravel(), x64.var(axis=(0, 1, 2)), rtol=0,
                               atol=16 * mean_value ** 2 * 2.0 ** -24)
    normalized = (x64 - x64.mean(axis=(0, 1, 2))) / np.sqrt(x64.var(axis=(0, 1, 2)) + 1e-5)
    # Centred on the mean rounded to the low dtype (x - centre exact; the centre's rounding is
    # compensated in the float32 shift): the roundings of the factor, the product, the shift
    # and the sum, each relative to |y| (up to ~4), not to the mean of ~30.
    unit = UNIT_ROUNDOFF[low]
    np.testing.assert_allclose(outputs.numpy().astype(np.float64), normalized, rtol=0,
                               atol=4 * unit * np.abs(normalized).max())


@pytest.mark.parametrize("policy,low,tolerance", POLICIES)
def test_batch_norm_gradients_with_a_far_mean(rng_seed, policy, low, tolerance):
    """The inputs' gradients (support pass, and query pass on the support moments) in the low
    dtype, with a mean far from zero (60 over a unit spread), against float64 by hand. Through
    the moments, x * 2 g_sq + g_sum would cancel in 8 or 11 bits (2.3-13 u of the gradient's
    scale over 40 seeds); centred on the rounded mean the error is a few roundings of the
    gradient's own scale (0.7-2.4 u, the float32 variance's cancellation included), so 4 u."""
    rng = np.random.default_rng(rng_seed)
    mean_value, c = 60.0, 16
    xs = rounded_to(mean_value + rng.standard_normal((4, 5, 5, c)), low)
    xq = rounded_to(mean_value + rng.standard_normal((2, 5, 5, c)), low)
    gs, gq = (rounded_to(rng.standard_normal(x.shape), low) for x in (xs, xq))
    gamma = (rng.uniform(0.5, 2.0, c) * rng.choice([-1.0, 1.0], c)).astype(np.float32)
    beta = rng.standard_normal(c).astype(np.float32)
    with global_policy(policy):
        bn = EpisodicBatchNorm()
        bn.build(xs.shape)
        bn.scale.assign(gamma.reshape(1, 1, 1, c))
        bn.offset.assign(beta.reshape(1, 1, 1, c))
        xs_t, xq_t = tf.cast(xs, low), tf.cast(xq, low)
        with tf.GradientTape() as tape:
            tape.watch([xs_t, xq_t])
            ys, moments = bn(xs_t, training=True)
            yq, _ = bn(xq_t, training=True, moments=moments)
            objective = (tf.reduce_sum(tf.cast(ys, tf.float32) * gs)
                         + tf.reduce_sum(tf.cast(yq, tf.float32) * gq))
        d_xs, d_xq = tape.gradient(objective, [xs_t, xq_t])
    assert d_xs.dtype == d_xq.dtype == low
    _, _, e_xs, e_xq, *_ = numpy_episodic_bn(xs, xq, gamma, beta, gs, gq)
    unit = UNIT_ROUNDOFF[low]
    assert_near(d_xs, e_xs, 4 * unit, "support input gradient")
    assert_near(d_xq, e_xq, 4 * unit, "query input gradient")


def resnet34_max_stride_16(**kwargs):
    return resnet34(max_stride=16, **kwargs)


def resnet_one_block_per_stage(**kwargs):
    """ResNet-34's code (stem, projections, dilation past max_stride 16), 1 block per stage."""
    return ResNet(blocks=(1, 1, 1, 1), max_stride=16, **kwargs)


def backbone_features_and_grads(backbone, images):
    with tf.GradientTape() as tape:
        features, moments = backbone(images, training=True)
        query, _ = backbone(images[:2], training=True, moments=moments)
        objective = tf.reduce_sum(tf.cast(features, tf.float32) ** 2) + tf.reduce_sum(
            tf.cast(query, tf.float32))
    return features, moments, tape.gradient(objective, backbone.trainable_variables)


def relative_error(actual, expected):
    """max |a - e| / max |e| for features; ||a - e|| / ||e|| for a list of gradients."""
    if isinstance(expected, list):
        actual, expected = (np.concatenate([np.asarray(g, np.float64).ravel() for g in x])
                            for x in (actual, expected))
        return np.linalg.norm(actual - expected) / np.linalg.norm(expected)
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return np.abs(actual - expected).max() / np.abs(expected).max()


@pytest.mark.parametrize("policy,low,tolerance", POLICIES)
@pytest.mark.parametrize("factory", [
    four_layer_convnet, resnet_one_block_per_stage,
    pytest.param(resnet34_max_stride_16, marks=pytest.mark.slow)])
def test_backbones_under_mixed_policy(rng_seed, policy, low, tolerance, factory):
    """Deep randomly initialised networks with batch norm on 3 images amplify perturbations a
    lot (rounding only the input to bfloat16 moves ResNet-34's gradient by ~30%), so the
    tolerance is calibrated on the float32 network itself: the mixed network's error must stay
    within 12x the error of the float32 network whose input and weights alone are rounded once to
    the low dtype (independent roundings in ~36 layers add up to ~sqrt(36) = 6x that; 2x
    margin; over 25 seeds of the convnet: at most 3.4x for features, 4.2x for gradients; with
    the input alone rounded, float16 convnet gradients reached 12.6x, hence the weights). A gradient error e < 1 also bounds
    the direction: cosine >= sqrt(1 - e^2)."""
    rng = np.random.default_rng(rng_seed)
    images = rng.uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    reference = factory(keep_spatial_dims=True)
    expected, _, expected_grads = backbone_features_and_grads(reference, images)
    # The float32 network with its input and weights rounded once to the low dtype: the mixed
    # network computes with both rounded, so this is the error floor its extra roundings add to.
    rounded_net = factory(keep_spatial_dims=True)
    rounded_net(images[:1], training=False)  # build
    rounded_net.set_weights([tf.cast(tf.cast(w, low), tf.float32).numpy()
                             for w in reference.get_weights()])
    rounded = tf.cast(tf.cast(images, low), tf.float32)
    perturbed, _, perturbed_grads = backbone_features_and_grads(rounded_net, rounded)
    with global_policy(policy):
        backbone = factory(keep_spatial_dims=True)
        backbone(images[:1], training=False)  # build
        backbone.set_weights(reference.get_weights())
        features, moments, grads = backbone_features_and_grads(backbone, images)
    assert_float32_variables(backbone)
    names = {k: (v.shape, v.dtype) for k, v in backbone.official_variable_names().items()}
    assert names == {k: (v.shape, v.dtype) for k, v in reference.official_variable_names().items()}
    assert features.dtype == low
    for scope, (mean, variance) in moments.items():
        assert mean.dtype == variance.dtype == tf.float32, scope
    for g, v in zip(grads, backbone.trainable_variables):
        assert g.dtype == tf.float32 and np.all(np.isfinite(g.numpy())), v.name
    assert np.all(np.isfinite(tf.cast(features, tf.float32).numpy()))
    feature_error = relative_error(tf.cast(features, tf.float32), expected)
    assert feature_error <= 12 * relative_error(perturbed, expected), feature_error
    grad_error = relative_error(grads, expected_grads)
    assert grad_error <= 12 * relative_error(perturbed_grads, expected_grads), grad_error


@pytest.mark.parametrize("policy,low,tolerance", POLICIES)
def test_prototypical_logits_are_float32(rng_seed, policy, low, tolerance):
    rng = np.random.default_rng(rng_seed)
    support = rng.standard_normal((6, 5)).astype(np.float32)
    query = rng.standard_normal((3, 5)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2], np.int32)
    expected = prototype_logits(query, class_prototypes(support, labels))
    logits = prototype_logits(tf.cast(query, low), class_prototypes(tf.cast(support, low), labels))
    assert logits.dtype == tf.float32
    assert_near(logits, expected, tolerance, "logits")
