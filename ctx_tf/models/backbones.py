"""Embedding networks with episodic batch norm (docs/protocol.md §6.1).

Every backbone is a Keras layer called as

    features, moments = backbone(images, training=..., moments=None)

`images` `[batch, height, width, 3]` (no gradient flows into them, as in the official code).
`moments` maps each batch-norm scope (official name, e.g. `resnet34/conv1`) to `(mean,
variance)`; pass the support pass's `moments` to the query pass so queries are normalized with
support statistics.

Gin configurables (official names and allowlists, plus our `keep_spatial_dims` argument which
the learners pass):
  `resnet34.weight_decay`, `resnet34.max_stride`, `resnet34.deeplab_alignment`
  `four_layer_convnet.weight_decay`
Each is a factory returning a fresh layer: `resnet34(keep_spatial_dims=True)`.

Conventions shared by all convolutions: TF `SAME` padding, no bias, truncated-normal (two-sigma)
stddev 0.1 init, L2 penalty `weight_decay * sum(w**2)` (no 1/2) collected in `layer.losses`.
`official_variable_names()` maps official TF1 variable names (without `:0`) to our variables.
"""

import functools
import math

import gin
import tensorflow as tf

from ctx_tf.keras import keras
from ctx_tf.models.batch_norm import EpisodicBatchNorm


# The official max-pools, applied by ConvBN before its batch norm (see ConvBN.call).
STEM_POOL = functools.partial(tf.nn.max_pool2d, ksize=3, strides=2, padding="SAME")  # ResNet
LAYER_POOL = functools.partial(tf.nn.max_pool2d, ksize=2, strides=2, padding="VALID")  # 4-layer


def conv_initializer():
    return keras.initializers.TruncatedNormal(stddev=0.1)


def l2_regularizer(weight_decay):
    # keras L2 is weight_decay * sum(w**2), the official penalty (no 1/2 factor).
    return keras.regularizers.L2(float(weight_decay)) if weight_decay else None


class ConvBN(keras.layers.Layer):
    """conv (no bias) -> episodic batch norm. Official variables `<scope>/weight` and
    `<scope>/batch_norm/*`.

    Call: `outputs, moments = layer(x, training=..., moments=None)`; x `[batch, h, w, c_in]`.
    """

    def __init__(self, kernel_size, filters, stride=1, dilation=1, weight_decay=0.0,
                 padding="SAME", scope="", **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = int(kernel_size)
        self.filters = int(filters)
        self.stride = int(stride)
        self.dilation = int(dilation)
        self.weight_decay = float(weight_decay)
        self.padding = padding
        self.scope = scope
        self.bn = EpisodicBatchNorm(name="batch_norm")

    def build(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 4 or input_shape[-1] is None:
            raise ValueError(
                f"{self.scope}: expected inputs [batch, height, width, channels] with known "
                f"channels, got {input_shape}"
            )
        self.kernel = self.add_weight(
            "weight",
            shape=[self.kernel_size, self.kernel_size, int(input_shape[-1]), self.filters],
            initializer=conv_initializer(),
            regularizer=l2_regularizer(self.weight_decay),
            trainable=True,
        )
        # Built here, not at its first call: the pooled path reads its scale before that.
        self.bn.build(tf.TensorShape([None, None, None, self.filters]))
        super().build(input_shape)

    def call(self, x, training=None, moments=None, pool=None):
        """`(outputs, moments)`; with `pool` (a per-channel max-pool) `outputs` is
        `pool(BN(conv(x)))`, computed as the batch norm of the pooled convolution (see
        `EpisodicBatchNorm.call`; the channel signs it needs are folded into the kernel)."""
        in_channels = int(self.kernel.shape[2])
        if x.shape[-1] is not None and x.shape[-1] != in_channels:
            raise ValueError(f"{self.scope}: kernel expects {in_channels} input channels, got {x.shape}")
        kernel = self.kernel
        if pool is not None:
            signs = tf.reshape(self.bn.channel_signs(), [-1])
            kernel = tf.cast(kernel, x.dtype) * tf.cast(signs, x.dtype)  # exact: sign flips
        if self.dilation == 1:
            y = tf.nn.conv2d(x, kernel, strides=self.stride, padding=self.padding)
        else:
            # tf.nn.conv2d(dilations>1) has no gradient kernel on CPU; tf.nn.convolution computes
            # the same values through space-to-batch (natively on TPU) and is differentiable.
            y = tf.nn.convolution(x, kernel, strides=self.stride, padding=self.padding,
                                  dilations=self.dilation)
        return self.bn(y, training=training, moments=moments, pool=pool)

    def official_variable_names(self):
        names = {f"{self.scope}/weight": self.kernel}
        names.update(self.bn.official_variable_names(self.scope))
        return names


class Backbone(keras.layers.Layer):
    """Base: a list of named ConvBN layers, the shared call contract and helpers."""

    def __init__(self, keep_spatial_dims=False, **kwargs):
        super().__init__(**kwargs)
        self.keep_spatial_dims = bool(keep_spatial_dims)

    def _conv_bns(self):
        raise NotImplementedError

    def _apply(self, conv_bn, x, training, moments, new_moments, pool=None):
        given = None
        if moments is not None:
            if conv_bn.scope not in moments:
                raise ValueError(
                    f"{self.name}: moments lack batch-norm scope {conv_bn.scope!r}; pass the "
                    "moments returned by the support pass of the same backbone"
                )
            given = moments[conv_bn.scope]
        y, new_moments[conv_bn.scope] = conv_bn(x, training=training, moments=given, pool=pool)
        return y

    @staticmethod
    def _check_images(images, name):
        images = tf.convert_to_tensor(images)
        if images.shape.rank != 4:
            raise ValueError(f"{name}: expected images [batch, height, width, channels], got {images.shape}")
        if images.dtype != tf.float32:
            images = tf.cast(images, tf.float32)
        return tf.stop_gradient(images)

    def official_variable_names(self):
        """{official variable name: variable}, e.g. `resnet34/conv1/weight`."""
        names = {}
        for conv_bn in self._conv_bns():
            if not conv_bn.built:
                raise ValueError(f"{self.name}: call the backbone once before listing its variables")
            names.update(conv_bn.official_variable_names())
        return names


class ResNet(Backbone):
    """ResNet with basic blocks, as the official `_resnet` (projection shortcut on the first
    block of every stage, dilation replacing stride beyond `max_stride`).

    Output: `[batch, h/16, w/16, 512]` for max_stride 16 with `keep_spatial_dims`, else
    `[batch, 512]` (global average pool).
    """

    def __init__(self, blocks=(3, 4, 6, 3), weight_decay=0.0, max_stride=None,
                 deeplab_alignment=True, keep_spatial_dims=False, name="resnet34", **kwargs):
        super().__init__(keep_spatial_dims=keep_spatial_dims, name=name, **kwargs)
        if max_stride not in (None, 4, 8, 16, 32):
            raise ValueError(f"resnet max_stride must be one of None, 4, 8, 16, 32; got {max_stride}")
        self.blocks = tuple(int(b) for b in blocks)
        self.weight_decay = float(weight_decay)
        self.max_stride = max_stride
        self.deeplab_alignment = bool(deeplab_alignment)
        scope = name
        self.stem = ConvBN(7, 64, stride=2, weight_decay=weight_decay, scope=f"{scope}/conv1", name="conv1")
        # Each block: (conv1, conv2, projection or None); strides and rates follow the official
        # rule: the network stride is 4 after the stem and max-pool.
        self.block_layers = []
        self.block_specs = []
        net_stride, net_rate = 4, 1
        for stage, (num_blocks, depth, nominal_stride) in enumerate(
            zip(self.blocks, (64, 128, 256, 512), (1, 2, 2, 2))
        ):
            for i in range(num_blocks):
                input_rate = net_rate
                output_rate = net_rate
                stride = 1
                if i == 0:
                    if max_stride and nominal_stride * net_stride > max_stride:
                        output_rate *= nominal_stride
                    else:
                        stride = nominal_stride
                net_stride *= stride
                net_rate = output_rate
                block_scope = f"{scope}/conv{stage + 2}_x/bottleneck_{i}"
                prefix = f"conv{stage + 2}_x_bottleneck_{i}"
                conv1 = ConvBN(3, depth, stride=stride, dilation=input_rate, weight_decay=weight_decay,
                               scope=f"{block_scope}/conv1", name=f"{prefix}_conv1")
                conv2 = ConvBN(3, depth, stride=1, dilation=output_rate, weight_decay=weight_decay,
                               scope=f"{block_scope}/conv2", name=f"{prefix}_conv2")
                projection = None
                if i == 0:
                    projection = ConvBN(
                        1, depth, stride=stride, weight_decay=weight_decay,
                        scope=f"{block_scope}/identity/projection_conv", name=f"{prefix}_projection")
                self.block_layers.append((conv1, conv2, projection))
                self.block_specs.append(dict(stride=stride, input_rate=input_rate, output_rate=output_rate))
        self.output_stride = net_stride

    def _conv_bns(self):
        layers = [self.stem]
        for conv1, conv2, projection in self.block_layers:
            layers += [conv1, conv2] + ([projection] if projection is not None else [])
        return layers

    def call(self, images, training=None, moments=None):
        x = self._check_images(images, self.name)
        if self.deeplab_alignment:
            size = tf.shape(x)[1]
            aligned = (size + 31) // 32 * 32 + 1
            x = tf.raw_ops.ResizeBilinear(images=x, size=tf.stack([aligned, aligned]), align_corners=True, half_pixel_centers=False)
        new_moments = {}
        # Max-pool before the batch norm and the ReLU (the same values: see ConvBN.call).
        x = tf.nn.relu(self._apply(self.stem, x, training, moments, new_moments, pool=STEM_POOL))
        for conv1, conv2, projection in self.block_layers:
            h = tf.nn.relu(self._apply(conv1, x, training, moments, new_moments))
            h = self._apply(conv2, h, training, moments, new_moments)
            if projection is not None:
                x = self._apply(projection, x, training, moments, new_moments)
            x = tf.nn.relu(x + h)
        if not self.keep_spatial_dims:
            x = tf.reduce_mean(x, axis=[1, 2])
        return x, new_moments


class FourLayerConvNet(Backbone):
    """Official `four_layer_convnet`: 4 x [conv3x3 64 (SAME) -> BN -> ReLU -> maxpool 2x2/2
    (VALID)].

    Output: `[batch, h/16, w/16, 64]` with `keep_spatial_dims`, else flattened (as official,
    not pooled) `[batch, (h/16) * (w/16) * 64]`.
    """

    def __init__(self, weight_decay=0.0, keep_spatial_dims=False, depth=64, name="four_layer_convnet", **kwargs):
        super().__init__(keep_spatial_dims=keep_spatial_dims, name=name, **kwargs)
        self.weight_decay = float(weight_decay)
        self.layers_ = [
            ConvBN(3, depth, weight_decay=weight_decay, scope=f"{name}/layer_{i}", name=f"layer_{i}")
            for i in range(4)
        ]

    def _conv_bns(self):
        return list(self.layers_)

    def call(self, images, training=None, moments=None):
        x = self._check_images(images, self.name)
        new_moments = {}
        for conv_bn in self.layers_:
            # conv -> max-pool -> batch norm -> ReLU: the official conv -> BN -> ReLU -> pool
            # values (ConvBN.call), with the elementwise work on the pooled tensor, a quarter
            # of the largest tensors of the step.
            x = tf.nn.relu(self._apply(conv_bn, x, training, moments, new_moments,
                                       pool=LAYER_POOL))
        if not self.keep_spatial_dims:
            x = tf.reshape(x, [tf.shape(x)[0], math.prod(x.shape[1:]) if x.shape[1:].is_fully_defined() else -1])
        return x, new_moments


@gin.configurable("resnet34", allowlist=["weight_decay", "max_stride", "deeplab_alignment"])
def resnet34(weight_decay=0.0, max_stride=None, deeplab_alignment=True, keep_spatial_dims=False):
    """A fresh ResNet-34 layer (variable scope `resnet34`)."""
    return ResNet(
        blocks=(3, 4, 6, 3),
        weight_decay=weight_decay,
        max_stride=max_stride,
        deeplab_alignment=deeplab_alignment,
        keep_spatial_dims=keep_spatial_dims,
        name="resnet34",
    )


@gin.configurable("four_layer_convnet", allowlist=["weight_decay"])
def four_layer_convnet(weight_decay=0.0, keep_spatial_dims=False):
    """A fresh four-layer convnet layer (variable scope `four_layer_convnet`)."""
    return FourLayerConvNet(weight_decay=weight_decay, keep_spatial_dims=keep_spatial_dims)
