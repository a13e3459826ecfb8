"""Episodic batch normalization (the official `bn`, docs/protocol.md §6.2).

Keras' BatchNormalization cannot express the episodic protocol, so this is a separate layer:

* training, moments not given (the support pass): normalize with the batch moments
  `mu = E[x]`, `var = E[x^2] - mu^2` over [N, H, W]; inside a tf.distribute replica context
  with several replicas the sums and counts are all-reduced, so the moments are global. The EMA
  (`ema <- ema_epsilon * ema + (1 - ema_epsilon) * batch`) is updated from these moments.
* moments given (the query pass): normalize with them; gradients flow through them, so the
  query loss also trains the support statistics' path. The EMA is never updated here.
* evaluation (`training=False`) with `use_ema`: normalize with the EMA moments.

Under a mixed policy the inputs and outputs are in the compute dtype, while the variables, the
moments (computed from a float32 copy of the inputs) and the per-channel factors are float32.

Gin: `bn.use_ema` (default True, as CTX binds it) and `bn.ema_epsilon` (the EMA *decay*, 0.9;
the official name is a misnomer kept for config compatibility).
"""

import gin
import tensorflow as tf

from ctx_tf.keras import keras

BN_EPSILON = 1e-5


def _sums(x, dtype):
    """(sum, sum of squares) of x over all axes but the last, kept as `[1, 1, 1, C]`, in `dtype`.

    One custom gradient, returned in x's dtype: `g_sum + 2 x g_sq` in one multiply-add over x
    (automatic differentiation would broadcast both gradients to x's shape, double x and add,
    about five passes over the largest tensors of a small backbone's step). For a narrower x
    (bf16/fp16 under a mixed policy) the sums are taken on a transient `dtype` copy, which is
    not kept for the backward pass, and the gradient is `(x - c) 2 g_sq + (g_sum + 2 c g_sq)`
    with c the mean rounded to x's dtype and the per-channel term in `dtype`: near the mean
    `x - c` is exact and every term is of the gradient's own size, so a mean far from zero
    does not cancel in 8 or 11 bits.
    """

    @tf.custom_gradient
    def sums(x):
        axes = list(range(x.shape.rank - 1))
        wide = tf.cast(x, dtype)
        total = tf.reduce_sum(wide, axis=axes, keepdims=True)
        sq_total = tf.reduce_sum(tf.square(wide), axis=axes, keepdims=True)

        def gradient(g_sum, g_sq):
            if x.dtype == dtype:
                return x * (2.0 * g_sq) + g_sum
            centre = tf.cast(total / tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), dtype), x.dtype)
            return ((x - centre) * tf.cast(2.0 * g_sq, x.dtype)
                    + tf.cast(g_sum + 2.0 * tf.cast(centre, dtype) * g_sq, x.dtype))

        return (total, sq_total), gradient

    return sums(x)


def _global_sums(x, dtype):
    """Returns (sum, sum of squares, count) of x over all axes but the last, all replicas."""
    local_sum, local_sq_sum = _sums(x, dtype)
    count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), dtype)
    replica_ctx = tf.distribute.get_replica_context()
    if replica_ctx is not None and replica_ctx.num_replicas_in_sync > 1:
        local_sum, local_sq_sum, count = replica_ctx.all_reduce(
            tf.distribute.ReduceOp.SUM, [local_sum, local_sq_sum, count]
        )
    return local_sum, local_sq_sum, count


def batch_moments(x, dtype=None):
    """Global batch moments of x `[batch, height, width, channels]` -> two `[1, 1, 1, C]`,
    computed in `dtype` (default x's dtype); their gradient reaches x in x's dtype."""
    total, sq_total, count = _global_sums(x, tf.as_dtype(dtype or x.dtype))
    mean = total / count
    variance = sq_total / count - tf.square(mean)
    return mean, variance


@gin.configurable("bn", allowlist=["use_ema", "ema_epsilon"])
class EpisodicBatchNorm(keras.layers.Layer):
    """Batch norm whose moments are computed on the support set and reused for the queries.

    Call: `outputs, moments = layer(x, training=..., moments=None)` with x
    `[batch, height, width, channels]`; `moments` is `(mean, variance)`, each `[1, 1, 1, C]`.
    Variables (official names under `<scope>/batch_norm/`): `offset` (beta, init 0), `scale`
    (gamma, init 1), non-trainable `mean_ema` (init 0) and `var_ema` (init 1), all `[1, 1, 1, C]`.
    """

    def __init__(self, use_ema=True, ema_epsilon=0.9, epsilon=BN_EPSILON, name="batch_norm", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= ema_epsilon <= 1.0:
            raise ValueError(f"bn.ema_epsilon (the EMA decay) must be in [0, 1], got {ema_epsilon}")
        self.use_ema = bool(use_ema)
        self.ema_epsilon = float(ema_epsilon)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 4 or input_shape[-1] is None:
            raise ValueError(
                f"{self.name}: expected inputs [batch, height, width, channels] with a known "
                f"channel count, got shape {input_shape}"
            )
        shape = [1, 1, 1, int(input_shape[-1])]
        # Never autocast: under a mixed policy the per-channel statistics stay float32.
        f32 = dict(dtype=self.variable_dtype, experimental_autocast=False)
        self.offset = self.add_weight("offset", shape=shape, initializer="zeros", trainable=True,
                                      **f32)
        self.scale = self.add_weight("scale", shape=shape, initializer="ones", trainable=True,
                                     **f32)
        # Every replica computes the same (all-reduced) moments, so keeping the first replica's
        # update is both correct and what the official code does.
        ema_kwargs = dict(
            shape=shape,
            trainable=False,
            synchronization=tf.VariableSynchronization.ON_WRITE,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            **f32,
        )
        self.mean_ema = self.add_weight("mean_ema", initializer="zeros", **ema_kwargs)
        self.var_ema = self.add_weight("var_ema", initializer="ones", **ema_kwargs)
        super().build(input_shape)

    def channel_signs(self):
        """`[1, 1, 1, C]` float32, -1 where the scale (gamma) is negative, else 1; no gradient.

        A caller that pools (see `call`) multiplies its input by these signs, typically by
        folding them into the preceding convolution's kernel, which is exact."""
        return tf.stop_gradient(tf.where(self.scale < 0.0, -1.0, 1.0))

    def call(self, inputs, training=None, moments=None, pool=None):
        """`(outputs, (mean, variance))`; with `pool`, `outputs = pool(normalized input)`.

        `pool` (optional) is a per-channel max-pool. Then `inputs` must be the input times
        `channel_signs()`: with the signs folded in, the normalization is increasing in every
        channel, so it commutes with the max-pool and runs on the pooled tensor, a quarter (or
        less) of the elementwise work and no full-resolution output to keep for the gradient.
        The moments taken and returned are those of the unsigned input, as without `pool`.
        """
        x = tf.convert_to_tensor(inputs)
        if x.shape.rank != 4:
            raise ValueError(f"{self.name}: expected rank-4 inputs, got shape {x.shape}")
        channels = int(self.offset.shape[-1])
        if x.shape[-1] is not None and x.shape[-1] != channels:
            raise ValueError(f"{self.name}: built for {channels} channels, got input shape {x.shape}")
        signs = self.channel_signs() if pool is not None else None
        if moments is not None:
            mean, variance = (tf.cast(m, self.variable_dtype) for m in moments)
            if mean.shape[-1] is not None and mean.shape[-1] != channels:
                raise ValueError(
                    f"{self.name}: given moments have {mean.shape[-1]} channels, layer has {channels}"
                )
        elif self.use_ema and not training:
            mean = tf.convert_to_tensor(self.mean_ema)
            variance = tf.convert_to_tensor(self.var_ema)
        else:
            # float32 sums: E[x^2] - E[x]^2 cancels catastrophically in 8 or 11 bits.
            mean, variance = batch_moments(x, self.variable_dtype)
            if signs is not None:
                mean = mean * signs  # the unsigned input's mean
            if self.use_ema and training:
                decay = self.ema_epsilon
                # EMA assignments carry no gradient; the moments themselves keep theirs.
                self.mean_ema.assign(decay * self.mean_ema + (1.0 - decay) * tf.stop_gradient(mean))
                self.var_ema.assign(decay * self.var_ema + (1.0 - decay) * tf.stop_gradient(variance))
        # Per-channel factors in float32, the elementwise work in the input's (compute) dtype.
        factor = tf.math.rsqrt(variance + self.epsilon) * self.scale
        centre, scaled = mean, factor
        if pool is not None:
            # The signed input's mean and factor (the factor is >= 0 now), on the pooled tensor.
            x, centre, scaled = pool(x), mean * signs, factor * signs
        if x.dtype == tf.float32 and pool is None:
            # One multiply-add per element, `x * factor + shift` (the form of the official
            # tf.nn.batch_normalization): the full-resolution passes dominate a small
            # backbone's step on large episodes, so each one counts.
            outputs = x * factor + (self.offset - mean * factor)
        else:
            # Centred: in 8 or 11 bits, x * factor and the shift would cancel (a mean far from
            # zero loses the spread). The centre is the mean rounded to x's dtype, so x - centre
            # is exact near it, and its rounding is compensated in the float32 shift.
            rounded = tf.cast(centre, x.dtype)
            shift = self.offset + (tf.cast(rounded, centre.dtype) - centre) * scaled
            outputs = (x - rounded) * tf.cast(scaled, x.dtype) + tf.cast(shift, x.dtype)
        return outputs, (mean, variance)

    def official_variable_names(self, scope):
        """{official name: variable} for this layer under `scope` (e.g. `resnet34/conv1`)."""
        prefix = f"{scope}/batch_norm"
        return {
            f"{prefix}/offset": self.offset,
            f"{prefix}/scale": self.scale,
            f"{prefix}/mean_ema": self.mean_ema,
            f"{prefix}/var_ema": self.var_ema,
        }

    def get_config(self):
        config = super().get_config()
        config.update(use_ema=self.use_ema, ema_epsilon=self.ema_epsilon, epsilon=self.epsilon)
        return config
