"""Backbones: ResNet-34 geometry, parameter count, names, weight decay; four-layer convnet."""

import numpy as np
import pytest
import tensorflow as tf

from ctx_tf.models import backbones


def expected_resnet34_counts():
    """(trainable, non-trainable) parameter counts from the architecture table: stem 7x7x64,
    stages of (3, 4, 6, 3) basic blocks of widths 64..512, a 1x1 projection in every stage's
    first block, no biases, BN offset+scale trainable and two EMAs non-trainable."""
    trainable = 7 * 7 * 3 * 64 + 2 * 64
    bn_channels = 64
    in_channels = 64
    for blocks, width in zip((3, 4, 6, 3), (64, 128, 256, 512)):
        for i in range(blocks):
            cin = in_channels if i == 0 else width
            trainable += 3 * 3 * cin * width + 3 * 3 * width * width + 2 * (2 * width)
            bn_channels += 2 * width
            if i == 0:
                trainable += cin * width + 2 * width
                bn_channels += width
        in_channels = width
    return trainable, 2 * bn_channels


def count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


@pytest.mark.compat
def test_resnet34_ctx_geometry_parameters_and_names():
    net = backbones.resnet34(max_stride=16, deeplab_alignment=False, keep_spatial_dims=True,
                             weight_decay=1e-3)
    features, moments = net(tf.random.uniform([1, 224, 224, 3], -1, 1), training=True)
    assert features.shape == (1, 14, 14, 512)
    trainable, non_trainable = expected_resnet34_counts()
    assert count(net.trainable_variables) == trainable
    assert count(net.non_trainable_variables) == non_trainable
    assert len(moments) == 37  # stem + 2 per block + 4 projections

    names = net.official_variable_names()
    assert len(names) == 37 * 5
    for name in ["resnet34/conv1/weight", "resnet34/conv2_x/bottleneck_0/conv1/weight",
                 "resnet34/conv2_x/bottleneck_0/identity/projection_conv/weight",
                 "resnet34/conv5_x/bottleneck_2/conv2/batch_norm/var_ema",
                 "resnet34/conv3_x/bottleneck_0/identity/projection_conv/batch_norm/mean_ema"]:
        assert name in names, name
    assert "resnet34/conv2_x/bottleneck_1/identity/projection_conv/weight" not in names
    assert names["resnet34/conv2_x/bottleneck_0/identity/projection_conv/weight"].shape == (1, 1, 64, 64)
    assert names["resnet34/conv1/batch_norm/scale"].shape == (1, 1, 1, 64)

    # L2 = wd * sum(w^2) over conv kernels only (no 1/2; BN parameters unregularized).
    kernels = [v for k, v in names.items() if k.endswith("/weight")]
    expected = 1e-3 * sum(np.sum(v.numpy().astype(np.float64) ** 2) for v in kernels)
    np.testing.assert_allclose(float(tf.add_n(net.losses)), expected, rtol=1e-5)

    # conv5_x keeps the stride-16 grid through dilation (official max_stride rule).
    specs = net.block_specs[-3:]
    assert specs[0] == dict(stride=1, input_rate=1, output_rate=2)
    assert specs[1] == specs[2] == dict(stride=1, input_rate=2, output_rate=2)
    assert [s["stride"] for s in net.block_specs[:3]] == [1, 1, 1]
    assert net.block_specs[3]["stride"] == 2 and net.block_specs[7]["stride"] == 2


def test_resnet_strides_alignment_and_pooling():
    images = tf.random.uniform([2, 64, 64, 3], -1, 1)
    net = backbones.resnet34(max_stride=None, deeplab_alignment=False, keep_spatial_dims=True)
    assert net(images, training=True)[0].shape == (2, 2, 2, 512)  # stride 32, no dilation
    assert all(s["output_rate"] == 1 for s in net.block_specs)
    net.keep_spatial_dims = False  # the ProtoNet setting: global average pool
    assert net(images, training=True)[0].shape == (2, 512)
    # max_stride 8 dilates conv4_x (rate 2) and conv5_x (rate 4); building is not needed.
    specs = backbones.resnet34(max_stride=8).block_specs
    assert [s["stride"] for s in specs] == [1] * 3 + [2] + [1] * 12
    assert [s["output_rate"] for s in specs[7:]] == [2] * 6 + [4] * 3
    # DeepLab alignment resizes 64 -> 65, so the stride-16 grid is 5x5.
    net = backbones.resnet34(max_stride=16, deeplab_alignment=True, keep_spatial_dims=True)
    assert net(images, training=True)[0].shape == (2, 5, 5, 512)
    with pytest.raises(ValueError, match="max_stride"):
        backbones.resnet34(max_stride=12)


def test_dilated_stage_has_the_dilated_receptive_field(rng_seed):
    """A single 3x3 conv with dilation 2 in conv5_x: an impulse spreads to offsets {-2, 0, 2}."""
    net = backbones.resnet34(max_stride=16, deeplab_alignment=False, keep_spatial_dims=True)
    net(tf.zeros([1, 32, 32, 3]), training=True)
    conv2 = net.block_layers[-1][1]  # conv5_x/bottleneck_2/conv2, dilation 2
    impulse = np.zeros([1, 9, 9, 512], np.float32)
    impulse[0, 4, 4, np.random.default_rng(rng_seed).integers(512)] = 1.0
    out, _ = conv2(tf.constant(impulse), training=False)  # EMA (identity) normalization
    touched = np.argwhere(np.abs(out.numpy()[0]).sum(axis=-1) > 0)
    assert sorted({tuple(t) for t in touched}) == [(r, c) for r in (2, 4, 6) for c in (2, 4, 6)]


def test_query_pass_reuses_support_moments_and_images_get_no_gradient(rng_seed):
    rng = np.random.default_rng(rng_seed)
    net = backbones.four_layer_convnet(keep_spatial_dims=True)
    support = tf.constant(rng.uniform(-1, 1, (4, 32, 32, 3)), tf.float32)
    query = tf.constant(rng.uniform(-1, 1, (3, 32, 32, 3)), tf.float32)
    _, moments = net(support, training=True)
    together, _ = net(query, training=True, moments=moments)
    alone, _ = net(query[:1], training=True, moments=moments)
    # With support moments a query's embedding does not depend on the other queries.
    np.testing.assert_allclose(alone.numpy()[0], together.numpy()[0], rtol=1e-5, atol=1e-6)
    with tf.GradientTape() as tape:
        tape.watch(support)
        features, _ = net(support, training=True)
        objective = tf.reduce_sum(features)
    assert tape.gradient(objective, support) is None
    with pytest.raises(ValueError, match="batch-norm scope"):
        net(query, training=True, moments={})


def test_four_layer_convnet_shapes_names_and_decay():
    net = backbones.four_layer_convnet(weight_decay=0.5)
    flat, moments = net(tf.zeros([2, 84, 84, 3]), training=True)
    assert flat.shape == (2, 5 * 5 * 64)  # flattened like the official convnet, not pooled
    assert len(moments) == 4
    spatial = backbones.four_layer_convnet(keep_spatial_dims=True)
    assert spatial(tf.zeros([2, 28, 28, 3]), training=True)[0].shape == (2, 1, 1, 64)
    names = net.official_variable_names()
    assert names["four_layer_convnet/layer_0/weight"].shape == (3, 3, 3, 64)
    assert names["four_layer_convnet/layer_3/weight"].shape == (3, 3, 64, 64)
    assert "four_layer_convnet/layer_2/batch_norm/offset" in names
    kernels = [v for k, v in names.items() if k.endswith("/weight")]
    expected = 0.5 * sum(np.sum(v.numpy().astype(np.float64) ** 2) for v in kernels)
    np.testing.assert_allclose(float(tf.add_n(net.losses)), expected, rtol=1e-5)
    for v in kernels:
        assert np.abs(v.numpy()).max() <= 0.2 + 1e-6  # truncated normal, stddev 0.1
    with pytest.raises(ValueError, match="images"):
        net(tf.zeros([84, 84, 3]), training=True)


@pytest.mark.compat
def test_dilated_conv_matches_a_dense_dilated_kernel_with_gradients(rng_seed):
    """Dilated ConvBN (conv5_x at max_stride 16) trains on CPU: its values equal a plain conv
    with the dilated (zero-stuffed) 5x5 kernel, and so do its gradients."""
    rng = np.random.default_rng(rng_seed)
    layer = backbones.ConvBN(3, 4, dilation=2)
    x = tf.constant(rng.normal(size=[2, 9, 9, 3]).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y, _ = layer(x, training=False)
        loss = tf.reduce_sum(y * tf.cos(y))
    kernel = layer.kernel
    with tf.GradientTape(persistent=True) as ref_tape:
        ref_tape.watch([x, kernel])
        dense = tf.scatter_nd([[2 * i, 2 * j] for i in range(3) for j in range(3)],
                              tf.reshape(kernel, [9, 3, 4]), [5, 5, 3, 4])
        ref = tf.nn.conv2d(x, dense, strides=1, padding="SAME")
        ref, _ = layer.bn(ref, training=False)
        ref_loss = tf.reduce_sum(ref * tf.cos(ref))
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)
    for got, want in zip(tape.gradient(loss, [x, kernel]),
                         ref_tape.gradient(ref_loss, [x, kernel])):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-4)


def test_deeplab_alignment_resize_equals_the_deprecated_v1_op(rng_seed):
    # The backbone resizes with the raw op to avoid the deprecation warning of
    # tf.compat.v1.image.resize_bilinear; outputs and gradients must be bit-identical.
    rng = np.random.default_rng(rng_seed)
    for size, aligned in ((84, 97), (32, 33), (126, 129)):
        images = tf.constant(rng.standard_normal((2, size, size, 3)), tf.float32)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(images)
            ours = tf.raw_ops.ResizeBilinear(images=images, size=[aligned, aligned],
                                             align_corners=True, half_pixel_centers=False)
            v1 = tf.compat.v1.image.resize_bilinear(images, [aligned, aligned],
                                                    align_corners=True)
        np.testing.assert_array_equal(ours.numpy(), v1.numpy())
        np.testing.assert_array_equal(tape.gradient(ours, images).numpy(),
                                      tape.gradient(v1, images).numpy())
    net = backbones.resnet34(max_stride=16, deeplab_alignment=True, keep_spatial_dims=True)
    images = tf.constant(rng.uniform(-1, 1, (1, 32, 32, 3)), tf.float32)
    with tf.compat.v1.test.mock.patch.object(
            tf.compat.v1.image, "resize_bilinear", side_effect=AssertionError("deprecated op")):
        assert net(images, training=False)[0].shape[1] == 3  # 33 px aligned, stride 16
