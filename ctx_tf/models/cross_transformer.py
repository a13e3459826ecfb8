"""The CrossTransformer head (CTX, meta-dataset protocol §5.3-5.4).

    logits = CrossTransformer(query_dim=128, val_dim=128)(support_features, support_labels,
                                                          query_features)

Support keys and query "queries" share one 1x1 projection (`tformer_keys/weight`), support and
query values share another (`tformer_values/weight`). For every query position the attention is
a softmax over all positions of all support images of one class, scaled by 1/sqrt(query_dim);
the attended support values form a query-aligned prototype per class, and the logit is minus the
squared distance between query values and prototype, summed over channels and averaged over
query positions.

Computation (`rematerialize=True`, the default): support positions are sorted by class, and the
attention is processed in blocks of `[query rows, one class's support positions]` (rows are
flattened query positions), one block at a time, with a hand-written backward pass. Within a
class the softmax needs only the row max, so there is no masking and no segment op; the softmax
denominator comes out of the prototype matmul (values augmented by a ones column) and the
normalisation is applied to the small `[rows, val_dim]` side. Per block the forward pass is two
matmuls, a max, a subtraction and an exp over the block; the backward pass recomputes the block
with one matmul and an exp (the shift folded into the matmul) and needs one elementwise product
over it besides its four gradient matmuls. Nearly all the time is in matmuls.

Memory: blocks are sized by `attention_block_bytes` (a CPU-cache target, default 8 MiB) within
`memory_budget_bytes` (several copies of a block are alive at once), so the peak memory does not
grow with the episode beyond per-row vectors. Half of `memory_budget_bytes` holds results the
forward pass keeps for the backward pass, block by block while it lasts: first every block's
prototypes (one matmul per block less in the backward pass), then attention blocks (no
recomputation; small episodes keep all of them). This is decided at run time from the
episode's shape, so one traced training step serves every episode shape.
`query_chunk_size` fixes the block to that many query images instead.

For training across replicas, `project()` and `logits_from_projections()` split the head so the
trainer can gather support keys/values/labels from all replicas in between.
"""

import math

import gin
import tensorflow as tf

from ctx_tf.keras import keras

# Live [query rows, class positions] attention blocks while one block is differentiated (the
# recomputed exp, the matmul giving d_scores and its product with exp, one transient); used to
# turn the memory budget into a block size.
_LIVE_ATTENTION_COPIES = 4
# Default attention block (see `CrossTransformer.attention_block_bytes`).
_DEFAULT_BLOCK_BYTES = 8 << 20


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


def _block_rows(class_positions, num_rows, block_elements):
    """Query rows per [rows, class_positions] attention block: `block_elements // class_positions`,
    at least 1, at most `num_rows` (all int32 tensors or python ints)."""
    rows = tf.maximum(1, block_elements // tf.maximum(class_positions, 1))
    return tf.minimum(rows, tf.maximum(num_rows, 1))


def _static_bool(x):
    """The python bool of a python or constant tensor bool, else None (decided at run time)."""
    value = tf.get_static_value(x)
    return None if value is None else bool(value)


def _rematerialized_distances(support_keys, support_values, class_bounds, query_keys,
                              query_values, scale, block_elements, query_block_rows=None,
                              keep_bytes=0):
    """Per-query-position squared distances to every query-aligned prototype, in blocks.

    Args:
      support_keys: `[S, query_dim]` support positions **sorted by class** (class c owns rows
        `class_bounds[c]:class_bounds[c + 1]`).
      support_values: `[S, val_dim]`, same order.
      class_bounds: int32 `[K + 1]` row offsets, increasing, every class non-empty.
      query_keys: `[R, query_dim]` flattened query positions.
      query_values: `[R, val_dim]`.
      scale: python float multiplying the dot products.
      block_elements: int32, target size of one `[rows, class positions]` attention block.
      query_block_rows: optional int32 fixing the rows per block (else derived per class from
        `block_elements`).
      keep_bytes: python int, memory the forward pass may use to keep, per block, results for
        the backward pass: first the unnormalised prototypes and softmax denominators
        (`rows * (val_dim + 1)` floats per block; one matmul less in the backward pass), then,
        with what remains once every block's prototypes are kept, the exp blocks themselves
        (`rows * class positions` floats; one matmul and one exp less). Blocks are taken in
        loop order until the bytes run out; the rest are recomputed.

    Returns:
      `[R, K]`: `||v_r - t_{c,r}||^2` summed over channels (not yet averaged over positions).

    For each class and block of query rows the forward pass is: scores = q k_c^T (the class's
    positions only, so no per-class masking or segment ops), shift by the row max, exp, and one
    matmul with the class's values augmented by a ones column, which yields the unnormalised
    prototype and the softmax denominator together; the normalisation is applied to the small
    `[rows, val_dim]` result, never to the attention block. The backward pass (written by hand,
    with the row maxima kept from the forward pass) recomputes the block as
    exp([q, -max] [k_c, 1]^T) (the shift folded into the matmul), folds 1/denominator into the
    small `[rows, val_dim]` factors, and then needs one elementwise product over the block:
        dscores = e * ([delta, -<t, delta>] / z) [v_c, 1]^T
    plus the matmuls for d_keys, d_queries and d_values. Blocks run sequentially, so the live
    memory is a few blocks whatever the episode size (plus what is kept).
    """
    dtype = support_keys.dtype
    num_classes = tf.size(class_bounds) - 1
    num_rows = tf.shape(query_keys)[0]
    key_dim = tf.shape(support_keys)[1]
    val_dim = tf.shape(support_values)[1]

    # What to keep: True (every block), False (none) or "some" (blocks in order while the
    # bytes last, decided at run time). Sizes in float64 so that they cannot overflow.
    def as_bytes(*dims):
        size = float(dtype.size)
        for d in dims:
            size *= tf.cast(d, tf.float64)
        return size

    proto_total = as_bytes(num_rows, num_classes, val_dim + 1)
    attention_total = as_bytes(num_rows, tf.shape(support_keys)[0])
    proto_pool = tf.constant(float(max(keep_bytes, 0)), tf.float64)  # python keep_bytes
    attention_pool = tf.maximum(proto_pool - proto_total, 0.0)

    def mode(total, pool):
        if keep_bytes <= 0 or _static_bool(pool <= 0.0):
            return False
        if _static_bool(total <= pool):
            return True
        return "some"

    keep_prototypes = mode(proto_total, proto_pool)
    keep_attention = mode(attention_total, attention_pool)

    def rows_for(class_positions):
        if query_block_rows is not None:
            return tf.minimum(tf.maximum(1, query_block_rows), tf.maximum(num_rows, 1))
        return _block_rows(class_positions, num_rows, block_elements)

    def loop(n, body, loop_vars):
        return tf.while_loop(lambda i, *_: i < n, body, (tf.constant(0),) + tuple(loop_vars),
                             parallel_iterations=1)[1:]

    def keep(how, ta, n, x, used, pool):
        """Writes x (or, when it does not fit, none of its rows) as element n of ta."""
        if how is True:
            return ta.write(n, x), used
        size = as_bytes(tf.shape(x)[0], tf.shape(x)[1])
        fits = used + size <= pool
        return ta.write(n, x[:tf.where(fits, tf.shape(x)[0], 0)]), used + tf.where(fits, size, 0.0)

    def kept_or(how, ta, n, compute_fn):
        """Element n of ta if it was kept, else compute_fn()."""
        if how is True:
            return ta.read(n)
        if how is False:
            return compute_fn()
        x = ta.read(n)
        return tf.cond(tf.shape(x)[0] > 0, lambda: x, compute_fn)

    def block_array(size=0, dynamic=False):
        return tf.TensorArray(dtype, size=size, dynamic_size=dynamic, infer_shape=False,
                              element_shape=[None, None])

    @tf.custom_gradient
    def distances_fn(sk, sv, qk, qv):
        qs = qk * scale
        sv_aug = tf.concat([sv, tf.ones([tf.shape(sv)[0], 1], dtype)], axis=1)  # [S, dv + 1]

        # Kept tensors, one element per (class, block) in loop order, read back in that order.
        def forward_class(c, n, used, dist_ta, max_ta, proto_ta, att_ta):
            lo, hi = class_bounds[c], class_bounds[c + 1]
            kc, vc = sk[lo:hi], sv_aug[lo:hi]
            rows = rows_for(hi - lo)
            num_blocks = (num_rows + rows - 1) // rows

            def block(i, n, used, d_ta, m_ta, proto_ta, att_ta):
                a = i * rows
                b = tf.minimum(a + rows, num_rows)
                scores = tf.matmul(qs[a:b], kc, transpose_b=True)  # [r, Sc]
                row_max = tf.reduce_max(scores, axis=1, keepdims=True)
                e = tf.exp(scores - row_max)
                tz = tf.matmul(e, vc)  # [r, dv + 1]: unnormalised prototype, denominator
                t = tz[:, :-1] / tz[:, -1:]
                d = tf.reduce_sum(tf.square(t - qv[a:b]), axis=1)
                used_proto, used_attention = used[0], used[1]
                if keep_prototypes is not False:
                    proto_ta, used_proto = keep(keep_prototypes, proto_ta, n, tz, used_proto,
                                                proto_pool)
                if keep_attention is not False:
                    att_ta, used_attention = keep(keep_attention, att_ta, n, e, used_attention,
                                                  attention_pool)
                return (i + 1, n + 1, tf.stack([used_proto, used_attention]), d_ta.write(i, d),
                        m_ta.write(i, row_max[:, 0]), proto_ta, att_ta)

            vector_array = lambda: tf.TensorArray(dtype, size=num_blocks, infer_shape=False,
                                                  element_shape=[None])
            n, used, d_ta, m_ta, proto_ta, att_ta = loop(num_blocks, block, (
                n, used, vector_array(), vector_array(), proto_ta, att_ta))
            return (c + 1, n, used, dist_ta.write(c, d_ta.concat()),
                    max_ta.write(c, m_ta.concat()), proto_ta, att_ta)

        _, _, dist_ta, max_ta, proto_ta, att_ta = loop(num_classes, forward_class, (
            tf.constant(0), tf.zeros([2], tf.float64),
            tf.TensorArray(dtype, size=num_classes, element_shape=[None]),
            tf.TensorArray(dtype, size=num_classes, element_shape=[None]),
            block_array(dynamic=True), block_array(dynamic=True)))
        distances = tf.transpose(dist_ta.stack())  # [R, K]
        row_maxes = max_ta.stack()  # [K, R]

        def grad(upstream):
            upstream = tf.convert_to_tensor(upstream)
            sk_aug = tf.concat([sk, tf.ones([tf.shape(sk)[0], 1], dtype)], axis=1)

            def backward_class(c, n, dk_ta, dv_ta, dq, neg_du):
                lo, hi = class_bounds[c], class_bounds[c + 1]
                kc, kc_aug, vc = sk[lo:hi], sk_aug[lo:hi], sv_aug[lo:hi]
                g2 = 2.0 * upstream[:, c:c + 1]
                neg_max = -row_maxes[c][:, None]
                rows = rows_for(hi - lo)
                num_blocks = (num_rows + rows - 1) // rows

                def block(i, n, dkc, dvc, dq_ta, du_ta):
                    a = i * rows
                    b = tf.minimum(a + rows, num_rows)

                    def recompute_attention():
                        q_aug = tf.concat([qs[a:b], neg_max[a:b]], axis=1)
                        return tf.exp(tf.matmul(q_aug, kc_aug, transpose_b=True))  # [r, Sc]

                    e = kept_or(keep_attention, att_ta, n, recompute_attention)
                    tz = kept_or(keep_prototypes, proto_ta, n, lambda: tf.matmul(e, vc))
                    inv_z = 1.0 / tz[:, -1:]
                    t = tz[:, :-1] * inv_z
                    delta = g2[a:b] * (t - qv[a:b])  # d objective / d prototype, [r, dv]
                    delta_z = delta * inv_z
                    dot = tf.reduce_sum(t * delta_z, axis=1, keepdims=True)
                    d_scores = e * tf.matmul(tf.concat([delta_z, -dot], axis=1), vc,
                                             transpose_b=True)  # [r, Sc]
                    dvc += tf.matmul(e, delta_z, transpose_a=True)
                    dkc += tf.matmul(d_scores, qs[a:b], transpose_a=True)
                    dq_ta = dq_ta.write(i, tf.matmul(d_scores, kc) * scale)
                    du_ta = du_ta.write(i, delta)
                    return i + 1, n + 1, dkc, dvc, dq_ta, du_ta

                n, dkc, dvc, dq_ta, du_ta = loop(num_blocks, block, (
                    n, tf.zeros([hi - lo, key_dim], dtype), tf.zeros([hi - lo, val_dim], dtype),
                    block_array(num_blocks), block_array(num_blocks)))
                return (c + 1, n, dk_ta.write(c, dkc), dv_ta.write(c, dvc), dq + dq_ta.concat(),
                        neg_du + du_ta.concat())

            _, dk_ta, dv_ta, d_qk, neg_d_qv = loop(num_classes, backward_class, (
                tf.constant(0), block_array(num_classes), block_array(num_classes),
                tf.zeros_like(qk), tf.zeros_like(qv)))
            d_sk = tf.reshape(dk_ta.concat(), tf.shape(sk))
            d_sv = tf.reshape(dv_ta.concat(), tf.shape(sv))
            return d_sk, d_sv, d_qk, -neg_d_qv

        return distances, grad

    return distances_fn(support_keys, support_values, query_keys, query_values)


@gin.configurable(
    "CrossTransformer",
    allowlist=["query_chunk_size", "memory_budget_bytes", "attention_block_bytes"],
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
                 attention_block_bytes=_DEFAULT_BLOCK_BYTES, **kwargs):
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
        keys = tf.tensordot(features, self.key_kernel[0, 0], axes=1)
        values = tf.tensordot(features, self.value_kernel[0, 0], axes=1)
        return keys, values

    def block_elements(self):
        """Elements of one attention block: the cache target, capped so that the live blocks
        take at most half the memory budget (the other half is for kept results)."""
        by_budget = self.memory_budget_bytes // 2 // (_LIVE_ATTENTION_COPIES * 4)
        return max(1, min(self.attention_block_bytes // 4, by_budget))

    def chunk_size_for(self, num_support_positions, num_query_positions):
        """Queries per block against `num_support_positions` support positions of one class
        (a python int or tensor); `query_chunk_size` when set."""
        if self.query_chunk_size is not None:
            return self.query_chunk_size
        per_query = num_support_positions * num_query_positions
        if isinstance(per_query, int):
            return max(1, self.block_elements() // max(per_query, 1))
        return tf.maximum(1, self.block_elements() // tf.maximum(per_query, 1))

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

        query_block_rows = None
        if self.query_chunk_size is not None:
            query_block_rows = self.query_chunk_size * query_positions
        # Half the budget keeps per-block results from the forward pass for the backward pass:
        # prototypes first, then attention blocks (small episodes are not recomputed at all).
        position_distances = _rematerialized_distances(
            rows(sk, order), rows(sv, order), class_bounds, rows(qk), rows(qv), scale,
            self.block_elements(), query_block_rows, self.memory_budget_bytes // 2)
        distances = tf.reduce_mean(
            tf.reshape(position_distances, [num_query, query_positions, num_classes]), axis=1)
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
            query_chunk_size=self.query_chunk_size, memory_budget_bytes=self.memory_budget_bytes,
            attention_block_bytes=self.attention_block_bytes)
        return config
