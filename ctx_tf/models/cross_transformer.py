"""The CrossTransformer head (CTX, docs/protocol.md §6.3-6.4).

    logits = CrossTransformer(query_dim=128, val_dim=128)(support_features, support_labels,
                                                          query_features)

Support keys and query "queries" share one 1x1 projection (`tformer_keys/weight`), support and
query values share another (`tformer_values/weight`). For every query position the attention is
a softmax over all positions of all support images of one class, scaled by 1/sqrt(query_dim);
the attended support values form a query-aligned prototype per class, and the logit is minus the
squared distance between query values and prototype, summed over channels and averaged over
query positions. With k, v the support keys/values at (image n, position m) and q_r, u_r the
query key/value at query position r:

    a_c[r, (n, m)] = softmax over {(n, m): label(n) = c} of <q_r, k_{n,m}> / sqrt(query_dim)
    t_c[r] = sum_{n, m} a_c[r, (n, m)] v_{n,m}          (query-aligned prototype)
    logit_c = -mean_r ||u_r - t_c[r]||^2

Computation: by default the attention runs in the memory-bounded blocked kernel of
`ctx_tf.models.blocked_attention` (blocks of query rows against one class, hand-written
backward pass, block sizes from `memory_budget_bytes` / `attention_block_bytes`; see there);
`rematerialize=False` runs the dense formulation below, which keeps the whole attention alive.

For training across replicas, `project()` and `logits_from_projections()` split the head so the
trainer can gather support keys/values/labels from all replicas in between.
"""

import collections
import math

import gin
import tensorflow as tf

from ctx_tf.keras import keras
from ctx_tf.models.blocked_attention import DEFAULT_BLOCK_BYTES, BlockPlan, blocked_class_distances

# What `CrossTransformer.attention_weights` returns (shapes in its docstring).
ChosenAttention = collections.namedtuple(
    "ChosenAttention", ["weights", "prototypes", "query_values", "support_values", "logits"])


def _check_features(features, name):
    features = tf.convert_to_tensor(features)
    if features.shape.rank != 4:
        raise ValueError(
            f"CrossTransformer: {name} must be [num_images, height, width, channels], got shape "
            f"{features.shape}"
        )
    return features


def _check_pair(support_features, query_features):
    support_features = _check_features(support_features, "support_features")
    query_features = _check_features(query_features, "query_features")
    if (support_features.shape[-1] is not None and query_features.shape[-1] is not None
            and support_features.shape[-1] != query_features.shape[-1]):
        raise ValueError(
            f"CrossTransformer: support features have {support_features.shape[-1]} channels, "
            f"query features {query_features.shape[-1]}"
        )
    return support_features, query_features


def _episode_labels(support_labels, num_support, num_classes=None):
    """(int32 labels `[num_support]`, num_classes, shots per class) from int or one-hot labels,
    checked to cover every class 0..K-1 (checks run with the labels)."""
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
    return labels, num_classes, shots


def _to_float32(x):
    """float16/bfloat16 -> float32; other dtypes unchanged."""
    return tf.cast(x, tf.float32) if x.dtype in (tf.float16, tf.bfloat16) else x


def _flat_positions(x):
    """`[n, h, w, c]` -> `[n, h * w, c]`."""
    shape = tf.shape(x)
    return tf.reshape(x, [shape[0], shape[1] * shape[2], shape[3]])


def _class_softmax(support_keys, labels, num_classes, query_keys, scale):
    """The per-class softmax as `attention = exp_scores * coefficient[:, None, :]`.

    Shapes as in `class_attention_distances`; columns are query image * query_positions + query
    position. Returns exp_scores `[num_support, support_positions, columns]` and coefficient
    `[num_support, columns]`.
    """
    num_support = tf.shape(support_keys)[0]
    support_positions = tf.shape(support_keys)[1]
    key_dim = tf.shape(support_keys)[2]
    flat_queries = tf.reshape(query_keys, [-1, key_dim]) * scale
    flat_keys = tf.reshape(support_keys, [num_support * support_positions, key_dim])
    # One large matmul; rows are support positions, so per-image reductions and per-class
    # segment ops below work on the leading axes without transposing the big tensor.
    scores = tf.matmul(flat_keys, flat_queries, transpose_b=True)
    scores = tf.reshape(scores, [num_support, support_positions, -1])

    # Softmax over (images of one class) x (their positions): shift each image by its own max,
    # then rescale images of a class to the class max, so no class can underflow entirely.
    image_max = tf.stop_gradient(tf.reduce_max(scores, axis=1))  # [num_support, columns]
    exp_scores = tf.exp(scores - image_max[:, None, :])
    image_sums = tf.reduce_sum(exp_scores, axis=1)  # [num_support, columns]
    class_max = tf.math.unsorted_segment_max(image_max, labels, num_classes)
    image_weight = tf.exp(image_max - tf.gather(class_max, labels))
    class_sums = tf.math.unsorted_segment_sum(image_weight * image_sums, labels, num_classes)
    return exp_scores, image_weight / tf.gather(class_sums, labels)


def class_attention(support_keys, labels, num_classes, query_keys, scale):
    """`a_c` for every query position: `[num_support, support_positions, columns]`, summing to 1
    over each class's images x positions (arguments as in `class_attention_distances`)."""
    exp_scores, coefficient = _class_softmax(support_keys, labels, num_classes, query_keys, scale)
    return exp_scores * coefficient[:, None, :]


def class_attention_distances(support_keys, support_values, labels, num_classes, query_keys,
                              query_values, scale):
    """Distances of a chunk of queries to all query-aligned prototypes (dense formulation).

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
    chunk = tf.shape(query_keys)[0]
    query_positions = tf.shape(query_keys)[1]
    val_dim = tf.shape(support_values)[2]
    exp_scores, coefficient = _class_softmax(support_keys, labels, num_classes, query_keys, scale)
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


@gin.configurable(
    "CrossTransformer",
    allowlist=["query_chunk_size", "memory_budget_bytes", "attention_block_bytes"],
)
class CrossTransformer(keras.layers.Layer):
    """CrossTransformer head: query-aligned class prototypes from spatial attention.

    Call: `logits = layer(support_features, support_labels, query_features)`
      support_features: float `[num_support, height, width, channels]`.
      support_labels: int32 `[num_support]`, episode-relative, covering 0..K-1 in any order
        with any number of shots per class.
      query_features: float `[num_query, height', width', channels]`.
      logits: float32 `[num_query, K]`, K = max(support_labels) + 1.

    Under a mixed policy (`mixed_bfloat16`, `mixed_float16`) the kernels stay float32 and the
    projections and attention blocks run in the compute dtype; softmax statistics, prototypes,
    distances and the logits are float32 (see `blocked_attention`).

    Args:
      query_dim: key/query projection size (the attention scale is 1/sqrt(query_dim)).
      val_dim: value projection size.
      tformer_weight_decay: L2 penalty `wd * sum(w**2)` on both kernels, in `layer.losses`.
      rematerialize: process the attention in blocks of (class, query rows) with a hand-written
        backward pass that recomputes each block (bounded memory, the default); False runs a
        plain differentiable formulation that keeps the whole attention tensor alive.
      query_chunk_size: queries per block; None derives the block from `attention_block_bytes`
        and `memory_budget_bytes`.
      memory_budget_bytes: bounds the attention memory: half for the few copies of one block
        alive at once (this caps the block size), half for results kept from the forward pass
        for the backward pass (prototypes, then attention blocks); larger budgets recompute
        less.
      attention_block_bytes: target size of one `[query rows, class support positions]` block,
        chosen for the CPU caches (smaller blocks stay in cache; larger blocks amortise the
        per-block overhead).
    """

    def __init__(self, query_dim=128, val_dim=128, tformer_weight_decay=0.0, rematerialize=True,
                 query_chunk_size=None, memory_budget_bytes=1 << 30,
                 attention_block_bytes=DEFAULT_BLOCK_BYTES, **kwargs):
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
        if attention_block_bytes <= 0:
            raise ValueError(f"attention_block_bytes must be positive, got {attention_block_bytes}")
        self.attention_block_bytes = int(attention_block_bytes)

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
        # In the compute dtype (float32 variables cast, under a mixed policy), also when called
        # outside `__call__` (the trainer's replica path), where variables are not autocast.
        dtype = self.compute_dtype
        features = tf.cast(features, dtype)
        keys = tf.tensordot(features, tf.cast(self.key_kernel[0, 0], dtype), axes=1)
        values = tf.tensordot(features, tf.cast(self.value_kernel[0, 0], dtype), axes=1)
        return keys, values

    def block_plan(self):
        """The `BlockPlan` of the blocked kernel, from the memory budget and block target."""
        return BlockPlan.from_budget(self.memory_budget_bytes, self.attention_block_bytes,
                                     self.query_chunk_size, tf.as_dtype(self.compute_dtype).size)

    def logits_from_projections(self, support_keys, support_values, support_labels, query_keys,
                                query_values, num_classes=None):
        """Logits `[num_query, K]` from projected support and query maps.

        `support_labels` is int `[num_support]` or one-hot `[num_support, K]` (as gathered across
        replicas); keys/values are the outputs of `project()`.
        """
        labels, num_classes, shots = _episode_labels(support_labels, support_keys.shape[0],
                                                     num_classes)

        sk, sv, qk, qv = (_flat_positions(x) for x in (support_keys, support_values, query_keys,
                                                       query_values))
        scale = 1.0 / math.sqrt(self.query_dim)
        if not self.rematerialize:
            # The dense formulation is the plain reference: float32 whatever the policy.
            sk, sv, qk, qv = (_to_float32(x) for x in (sk, sv, qk, qv))
            distances = class_attention_distances(sk, sv, labels, num_classes, qk, qv, scale)
            return -distances
        # Support positions sorted by class (a permutation of the small projected maps), so
        # that each class owns a contiguous range of rows.
        order = tf.argsort(labels, stable=True)
        support_positions = tf.shape(sk)[1]
        class_bounds = tf.concat([[0], tf.cumsum(shots) * support_positions], axis=0)
        num_query, query_positions = tf.shape(qk)[0], tf.shape(qk)[1]

        def rows(x, perm=None):
            if perm is not None:
                x = tf.gather(x, perm)
            return tf.reshape(x, [-1, tf.shape(x)[2]])

        position_distances = blocked_class_distances(
            rows(sk, order), rows(sv, order), class_bounds, rows(qk), rows(qv), scale,
            self.block_plan(), query_positions)
        distances = tf.reduce_mean(
            tf.reshape(position_distances, [num_query, query_positions, num_classes]), axis=1)
        return -distances

    def call(self, support_features, support_labels, query_features):
        support_features, query_features = _check_pair(support_features, query_features)
        support_keys, support_values = self.project(support_features)
        query_keys, query_values = self.project(query_features)
        return self.logits_from_projections(
            support_keys, support_values, support_labels, query_keys, query_values)

    def attention_weights(self, support_features, support_labels, query_features, query_indices):
        """The attention of chosen queries over the support set (for inspection; eager or not).

        Only the chosen queries' attention is formed: `[num_chosen, query_positions,
        num_support, support_positions]` floats. Computed in float32 whatever the policy.

        Args:
          support_features, support_labels, query_features: as in `call`.
          query_indices: query image indices, a python list or int `[num_chosen]` tensor.

        Returns:
          `ChosenAttention` (query positions r and support positions m in row-major h, w order):
            weights: float32 `[num_chosen, query_positions, num_support, support_positions]`;
              `weights[i, r, n, m]` is a_c[r, (n, m)] for the class c of support image n (0 for
              the other classes' images), so it sums to 1 over each class's shots x positions.
            prototypes: `[num_chosen, query_positions, K, val_dim]`, t_c[r] = sum over class c's
              images n and positions m of `weights[i, r, n, m] * support_values[n, m]`.
            query_values: `[num_chosen, query_positions, val_dim]` (u_r).
            support_values: `[num_support, support_positions, val_dim]` (v).
            logits: `[num_chosen, K]`, -mean_r ||u_r - t_c[r]||^2: the layer's logits for the
              chosen queries.
        """
        support_features, query_features = _check_pair(support_features, query_features)
        indices = tf.reshape(tf.cast(tf.convert_to_tensor(query_indices), tf.int32), [-1])
        num_query = tf.shape(query_features)[0]
        checks = [tf.debugging.assert_non_negative(
                      indices, message="CrossTransformer.attention_weights: negative query_indices"),
                  tf.debugging.assert_less(
                      indices, num_query,
                      message="CrossTransformer.attention_weights: query_indices beyond num_query")]
        with tf.control_dependencies(checks):
            chosen = tf.gather(query_features, indices)
        support_keys, support_values = self.project(support_features)
        query_keys, query_values = self.project(chosen)
        labels, num_classes, _ = _episode_labels(support_labels, support_keys.shape[0])
        sk, sv, qk, qv = (_to_float32(_flat_positions(x)) for x in (
            support_keys, support_values, query_keys, query_values))
        attention = class_attention(sk, labels, num_classes, qk, 1.0 / math.sqrt(self.query_dim))
        # [num_support, support_positions, columns] -> [columns, num_support, support_positions]
        num_chosen, query_positions = tf.shape(qk)[0], tf.shape(qk)[1]
        weights = tf.reshape(tf.transpose(attention, [2, 0, 1]),
                             [num_chosen, query_positions, tf.shape(sk)[0], tf.shape(sk)[1]])
        image_prototypes = tf.einsum("irnm,nmd->irnd", weights, sv)
        prototypes = tf.transpose(tf.math.unsorted_segment_sum(
            tf.transpose(image_prototypes, [2, 0, 1, 3]), labels, num_classes), [1, 2, 0, 3])
        logits = -tf.reduce_mean(
            tf.reduce_sum(tf.square(qv[:, :, None, :] - prototypes), axis=3), axis=1)
        return ChosenAttention(weights, prototypes, qv, sv, logits)

    def get_config(self):
        config = super().get_config()
        config.update(
            query_dim=self.query_dim, val_dim=self.val_dim,
            tformer_weight_decay=self.tformer_weight_decay, rematerialize=self.rematerialize,
            query_chunk_size=self.query_chunk_size, memory_budget_bytes=self.memory_budget_bytes,
            attention_block_bytes=self.attention_block_bytes)
        return config
