"""The CrossTransformer head (CTX, meta-dataset protocol §5.3-5.4).

    logits = CrossTransformer(query_dim=128, val_dim=128)(support_features, support_labels,
                                                          query_features)

Support keys and query "queries" share one 1x1 projection (`tformer_keys/weight`), support and
query values share another (`tformer_values/weight`). For every query position the attention is
a softmax over all positions of all support images of one class, scaled by 1/sqrt(query_dim);
the attended support values form a query-aligned prototype per class, and the logit is minus the
squared distance between query values and prototype, summed over channels and averaged over
query positions.

Memory: the attention of one query image is `[num_support * H * W, H * W]`. Queries are
processed in chunks sized to `memory_budget_bytes` (or a fixed `query_chunk_size`), and with
`rematerialize=True` the backward pass recomputes each chunk instead of storing its attention,
so the peak memory is that of one chunk whatever the number of queries (the official code does
the same with chunks of one query).

For training across replicas, `project()` and `logits_from_projections()` split the head so the
trainer can gather support keys/values/labels from all replicas in between.
"""

import math

import gin
import tensorflow as tf

from ctx_tf.keras import keras

# Live [support positions, chunk positions] float32 tensors while one chunk is differentiated
# (scores, exp, attention and their gradients); used to turn the memory budget into a chunk size.
_LIVE_ATTENTION_COPIES = 6


def _check_features(features, name):
    features = tf.convert_to_tensor(features)
    if features.shape.rank != 4:
        raise ValueError(
            f"CrossTransformer: {name} must be [num_images, height, width, channels], got shape "
            f"{features.shape}"
        )
    return features


def _class_attention_distances(support_keys, support_values, labels, num_classes, query_keys,
                               query_values, scale):
    """Distances of a chunk of queries to all query-aligned prototypes.

    Args:
      support_keys: `[num_support, support_positions, query_dim]`.
      support_values: `[num_support, support_positions, val_dim]`.
      labels: int32 `[num_support]` in 0..num_classes-1.
      num_classes: int32 scalar.
      query_keys: `[chunk, query_positions, query_dim]`.
      query_values: `[chunk, query_positions, val_dim]`.
      scale: python float multiplying the dot products.

    Returns:
      `[chunk, num_classes]` squared distances averaged over query positions.
    """
    num_support = tf.shape(support_keys)[0]
    support_positions = tf.shape(support_keys)[1]
    chunk = tf.shape(query_keys)[0]
    query_positions = tf.shape(query_keys)[1]
    key_dim = tf.shape(support_keys)[2]
    val_dim = tf.shape(support_values)[2]
    # Column index = query image * query_positions + query position.
    flat_queries = tf.reshape(query_keys, [chunk * query_positions, key_dim]) * scale
    flat_keys = tf.reshape(support_keys, [num_support * support_positions, key_dim])
    # One large matmul; rows are support positions, so per-image reductions and per-class
    # segment ops below work on the leading axes without transposing the big tensor.
    scores = tf.matmul(flat_keys, flat_queries, transpose_b=True)
    scores = tf.reshape(scores, [num_support, support_positions, chunk * query_positions])

    # Softmax over (images of one class) x (their positions): shift each image by its own max,
    # then rescale images of a class to the class max, so no class can underflow entirely.
    image_max = tf.stop_gradient(tf.reduce_max(scores, axis=1))  # [num_support, columns]
    exp_scores = tf.exp(scores - image_max[:, None, :])
    image_sums = tf.reduce_sum(exp_scores, axis=1)  # [num_support, columns]
    class_max = tf.math.unsorted_segment_max(image_max, labels, num_classes)
    image_weight = tf.exp(image_max - tf.gather(class_max, labels))
    class_sums = tf.math.unsorted_segment_sum(image_weight * image_sums, labels, num_classes)
    coefficient = image_weight / tf.gather(class_sums, labels)  # [num_support, columns]

    # Attention = exp_scores * coefficient; the coefficient is applied after the per-image value
    # sums (val_dim rows instead of support_positions rows), one pass less over the big tensor.
    image_prototypes = tf.matmul(support_values, exp_scores, transpose_a=True)  # [Ns, dv, cols]
    image_prototypes = image_prototypes * coefficient[:, None, :]
    prototypes = tf.math.unsorted_segment_sum(image_prototypes, labels, num_classes)  # [K, dv, cols]
    flat_query_values = tf.transpose(
        tf.reshape(query_values, [chunk * query_positions, val_dim])
    )  # [dv, cols]
    distances = tf.reduce_sum(tf.square(prototypes - flat_query_values[None]), axis=1)  # [K, cols]
    distances = tf.reshape(distances, [num_classes, chunk, query_positions])
    return tf.transpose(tf.reduce_mean(distances, axis=2))


def _pad_to_chunks(x, chunk_size):
    """[n, ...] -> [num_chunks, chunk_size, ...], zero-padded at the end."""
    n = tf.shape(x)[0]
    num_chunks = (n + chunk_size - 1) // chunk_size
    pad = num_chunks * chunk_size - n
    paddings = tf.concat([[[0, pad]], tf.zeros([x.shape.rank - 1, 2], tf.int32)], axis=0)
    x = tf.pad(x, paddings)
    return tf.reshape(x, tf.concat([[num_chunks, chunk_size], tf.shape(x)[1:]], axis=0))


def _rematerialized_distances(support_keys, support_values, labels, num_classes, query_keys,
                              query_values, scale, chunk_size):
    """As `_class_attention_distances` over all queries, in chunks, recomputing each chunk in
    the backward pass so no attention tensor outlives its chunk."""

    def chunk_fn(sk, sv, qk, qv):
        return _class_attention_distances(sk, sv, labels, num_classes, qk, qv, scale)

    @tf.custom_gradient
    def distances_fn(sk, sv, qk, qv):
        num_queries = tf.shape(qk)[0]
        qk_chunks = _pad_to_chunks(qk, chunk_size)
        qv_chunks = _pad_to_chunks(qv, chunk_size)
        # Sequential: running chunks in parallel would multiply the peak memory.
        chunk_distances = tf.map_fn(
            lambda c: chunk_fn(sk, sv, c[0], c[1]),
            (qk_chunks, qv_chunks),
            fn_output_signature=tf.TensorSpec([None, None], sk.dtype),
            parallel_iterations=1,
        )
        out = tf.reshape(chunk_distances, [-1, num_classes])[:num_queries]

        def grad(upstream):
            upstream_chunks = _pad_to_chunks(upstream, chunk_size)
            num_chunks = tf.shape(qk_chunks)[0]

            def body(i, d_sk, d_sv, d_qk, d_qv):
                qk_i, qv_i = qk_chunks[i], qv_chunks[i]
                with tf.GradientTape() as tape:
                    tape.watch([sk, sv, qk_i, qv_i])
                    d_i = chunk_fn(sk, sv, qk_i, qv_i)
                g_sk, g_sv, g_qk, g_qv = tape.gradient(
                    d_i, [sk, sv, qk_i, qv_i], output_gradients=upstream_chunks[i]
                )
                return i + 1, d_sk + g_sk, d_sv + g_sv, d_qk.write(i, g_qk), d_qv.write(i, g_qv)

            _, d_sk, d_sv, d_qk, d_qv = tf.while_loop(
                lambda i, *_: i < num_chunks,
                body,
                (
                    tf.constant(0),
                    tf.zeros_like(sk),
                    tf.zeros_like(sv),
                    tf.TensorArray(qk.dtype, size=num_chunks, element_shape=qk_chunks.shape[1:]),
                    tf.TensorArray(qv.dtype, size=num_chunks, element_shape=qv_chunks.shape[1:]),
                ),
                parallel_iterations=1,
            )
            d_qk = tf.reshape(d_qk.stack(), tf.shape(qk_chunks))
            d_qv = tf.reshape(d_qv.stack(), tf.shape(qv_chunks))
            d_qk = tf.reshape(d_qk, tf.concat([[-1], tf.shape(qk)[1:]], 0))[:num_queries]
            d_qv = tf.reshape(d_qv, tf.concat([[-1], tf.shape(qv)[1:]], 0))[:num_queries]
            return d_sk, d_sv, d_qk, d_qv

        return out, grad

    return distances_fn(support_keys, support_values, query_keys, query_values)


@gin.configurable(
    "CrossTransformer",
    allowlist=["query_chunk_size", "memory_budget_bytes"],
)
class CrossTransformer(keras.layers.Layer):
    """CrossTransformer head: query-aligned class prototypes from spatial attention.

    Call: `logits = layer(support_features, support_labels, query_features)`
      support_features: float32 `[num_support, height, width, channels]`.
      support_labels: int32 `[num_support]`, episode-relative, covering 0..K-1 in any order
        with any number of shots per class.
      query_features: float32 `[num_query, height', width', channels]`.
      logits: float32 `[num_query, K]`, K = max(support_labels) + 1.

    Args:
      query_dim: key/query projection size (the attention scale is 1/sqrt(query_dim)).
      val_dim: value projection size.
      tformer_weight_decay: L2 penalty `wd * sum(w**2)` on both kernels, in `layer.losses`.
      rematerialize: recompute each query chunk in the backward pass (bounded memory).
      query_chunk_size: queries per chunk; None derives it from `memory_budget_bytes`.
      memory_budget_bytes: target size of one chunk's attention tensors, forward plus backward.
    """

    def __init__(self, query_dim=128, val_dim=128, tformer_weight_decay=0.0, rematerialize=True,
                 query_chunk_size=None, memory_budget_bytes=1 << 30, **kwargs):
        kwargs.setdefault("name", "cross_transformer")
        super().__init__(**kwargs)
        if query_dim <= 0 or val_dim <= 0:
            raise ValueError(f"query_dim and val_dim must be positive, got {query_dim}, {val_dim}")
        if query_chunk_size is not None and query_chunk_size <= 0:
            raise ValueError(f"query_chunk_size must be positive or None, got {query_chunk_size}")
        self.query_dim = int(query_dim)
        self.val_dim = int(val_dim)
        self.tformer_weight_decay = float(tformer_weight_decay)
        self.rematerialize = bool(rematerialize)
        self.query_chunk_size = query_chunk_size
        self.memory_budget_bytes = int(memory_budget_bytes)

    def build(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 4 or input_shape[-1] is None:
            raise ValueError(
                "CrossTransformer: support_features must be [num_support, height, width, channels] "
                f"with known channels, got {input_shape}"
            )
        channels = int(input_shape[-1])
        regularizer = (
            keras.regularizers.L2(self.tformer_weight_decay) if self.tformer_weight_decay else None
        )
        self.key_kernel = self.add_weight(
            "tformer_keys/weight", shape=[1, 1, channels, self.query_dim], initializer=keras.initializers.TruncatedNormal(stddev=0.1),
            regularizer=regularizer, trainable=True)
        self.value_kernel = self.add_weight(
            "tformer_values/weight", shape=[1, 1, channels, self.val_dim], initializer=keras.initializers.TruncatedNormal(stddev=0.1),
            regularizer=regularizer, trainable=True)
        super().build(input_shape)

    def official_variable_names(self):
        """{official variable name: variable}."""
        return {"tformer_keys/weight": self.key_kernel, "tformer_values/weight": self.value_kernel}

    def project(self, features):
        """features `[n, h, w, channels]` -> (keys `[n, h, w, query_dim]`, values `[n, h, w, val_dim]`)."""
        features = _check_features(features, "features")
        if not self.built:
            self.build(features.shape)
        channels = int(self.key_kernel.shape[2])
        if features.shape[-1] is not None and features.shape[-1] != channels:
            raise ValueError(
                f"CrossTransformer: built for {channels} feature channels, got features of shape "
                f"{features.shape}"
            )
        keys = tf.tensordot(features, self.key_kernel[0, 0], axes=1)
        values = tf.tensordot(features, self.value_kernel[0, 0], axes=1)
        return keys, values

    def chunk_size_for(self, num_support_positions, num_query_positions):
        """Queries per chunk for the given support/query positions (a python int or tensor)."""
        if self.query_chunk_size is not None:
            return self.query_chunk_size
        per_query = _LIVE_ATTENTION_COPIES * 4 * num_support_positions * num_query_positions
        if isinstance(per_query, int):
            return max(1, self.memory_budget_bytes // max(per_query, 1))
        return tf.maximum(1, self.memory_budget_bytes // tf.maximum(per_query, 1))

    def logits_from_projections(self, support_keys, support_values, support_labels, query_keys,
                                query_values, num_classes=None):
        """Logits `[num_query, K]` from projected support and query maps.

        `support_labels` is int `[num_support]` or one-hot `[num_support, K]` (as gathered across
        replicas); keys/values are the outputs of `project()`.
        """
        support_labels = tf.convert_to_tensor(support_labels)
        if support_labels.shape.rank == 2:
            if num_classes is None:
                num_classes = tf.shape(support_labels)[1]
            support_labels = tf.argmax(support_labels, axis=1, output_type=tf.int32)
        elif support_labels.shape.rank != 1:
            raise ValueError(
                f"CrossTransformer: support_labels must be [num_support] or one-hot "
                f"[num_support, K], got shape {support_labels.shape}"
            )
        labels = tf.cast(support_labels, tf.int32)
        num_support = support_keys.shape[0]
        if num_support is not None and labels.shape[0] is not None and labels.shape[0] != num_support:
            raise ValueError(
                f"CrossTransformer: {labels.shape[0]} support labels for {num_support} support images"
            )
        if num_classes is None:
            num_classes = tf.reduce_max(labels) + 1
        num_classes = tf.cast(num_classes, tf.int32)
        shots = tf.math.bincount(labels, minlength=num_classes, maxlength=num_classes)
        checks = [
            tf.debugging.assert_non_negative(labels, message="CrossTransformer: negative support label"),
            tf.debugging.assert_positive(
                shots, message="CrossTransformer: support_labels must cover every class 0..K-1"),
        ]
        with tf.control_dependencies(checks):
            labels = tf.identity(labels)

        def flat(x):
            shape = tf.shape(x)
            return tf.reshape(x, [shape[0], shape[1] * shape[2], shape[3]])

        sk, sv, qk, qv = flat(support_keys), flat(support_values), flat(query_keys), flat(query_values)
        scale = 1.0 / math.sqrt(self.query_dim)
        if not self.rematerialize:
            distances = _class_attention_distances(sk, sv, labels, num_classes, qk, qv, scale)
        else:
            static = [support_keys.shape[0], support_keys.shape[1], support_keys.shape[2],
                      query_keys.shape[1], query_keys.shape[2]]
            if all(d is not None for d in static):
                chunk = self.chunk_size_for(static[0] * static[1] * static[2], static[3] * static[4])
            else:
                chunk = self.chunk_size_for(tf.shape(sk)[0] * tf.shape(sk)[1], tf.shape(qk)[1])
            # Equal chunks (ceil(n / ceil(n / max_chunk))) so padding never exceeds one query per
            # chunk, whatever the budget.
            num_query = query_keys.shape[0]
            if num_query is not None and isinstance(chunk, int):
                num_chunks = -(-num_query // chunk)
                chunk = max(1, -(-num_query // max(num_chunks, 1)))
            else:
                n = tf.shape(qk)[0]
                num_chunks = tf.maximum(1, (n + chunk - 1) // chunk)
                chunk = tf.maximum(1, (n + num_chunks - 1) // num_chunks)
            if isinstance(chunk, int) and num_query is not None and chunk >= num_query:
                # One chunk holds every query: the budget covers plain backprop, so recomputing
                # would only cost time.
                distances = _class_attention_distances(sk, sv, labels, num_classes, qk, qv, scale)
            else:
                distances = _rematerialized_distances(
                    sk, sv, labels, num_classes, qk, qv, scale, chunk)
        return -distances

    def call(self, support_features, support_labels, query_features):
        support_features = _check_features(support_features, "support_features")
        query_features = _check_features(query_features, "query_features")
        if (support_features.shape[-1] is not None and query_features.shape[-1] is not None
                and support_features.shape[-1] != query_features.shape[-1]):
            raise ValueError(
                f"CrossTransformer: support features have {support_features.shape[-1]} channels, "
                f"query features {query_features.shape[-1]}"
            )
        support_keys, support_values = self.project(support_features)
        query_keys, query_values = self.project(query_features)
        return self.logits_from_projections(
            support_keys, support_values, support_labels, query_keys, query_values)

    def get_config(self):
        config = super().get_config()
        config.update(
            query_dim=self.query_dim, val_dim=self.val_dim,
            tformer_weight_decay=self.tformer_weight_decay, rematerialize=self.rematerialize,
            query_chunk_size=self.query_chunk_size, memory_budget_bytes=self.memory_budget_bytes)
        return config
