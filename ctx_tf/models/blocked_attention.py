"""The memory-bounded CTX attention kernel: per-class softmax attention in blocks.

    distances = blocked_class_distances(support_keys, support_values, class_bounds,
                                        query_keys, query_values, scale, plan, query_positions)

Support positions arrive sorted by class, so class c owns a contiguous range of rows, and the
attention is processed in blocks of `[query rows, one class's support positions]` (rows are
flattened query positions), one block at a time, with a hand-written backward pass. Within a
class the softmax needs only the row max, so there is no masking and no segment op; the softmax
denominator comes out of the prototype matmul (values augmented by a ones column) and the
normalisation is applied to the small `[rows, val_dim]` side. Per block the forward pass is two
matmuls, a max, a subtraction and an exp over the block; the backward pass recomputes the block
with one matmul and an exp (the shift folded into the matmul) and needs one elementwise product
over it besides its four gradient matmuls. Nearly all the time is in matmuls.

Memory (`BlockPlan`): blocks are sized by a CPU-cache target within half the memory budget
(several copies of a block are alive at once), so the peak memory does not grow with the
episode beyond per-row vectors. The other half holds results the forward pass keeps for the
backward pass, block by block while it lasts: first every block's prototypes (one matmul per
block less in the backward pass), then attention blocks (no recomputation; small episodes keep
all of them). This is decided at run time from the episode's shape, so one traced training step
serves every episode shape.
"""

import dataclasses
from typing import Optional

import tensorflow as tf

# Live [query rows, class positions] attention blocks while one block is differentiated (the
# recomputed exp, the matmul giving d_scores and its product with exp, one transient); used to
# turn the memory budget into a block size.
LIVE_ATTENTION_COPIES = 4
# Default attention block in bytes: small enough to stay in the CPU caches, large enough to
# amortise the per-block overhead.
DEFAULT_BLOCK_BYTES = 8 << 20


@dataclasses.dataclass(frozen=True)
class BlockPlan:
    """How the attention is cut into blocks and how much the forward pass keeps.

    Attributes:
      block_elements: elements of one `[query rows, class positions]` block.
      keep_bytes: bytes the forward pass may keep, per block, for the backward pass.
      queries_per_block: when set, every block holds this many whole query images instead.
    """

    block_elements: int
    keep_bytes: int
    queries_per_block: Optional[int] = None

    @classmethod
    def from_budget(cls, memory_budget_bytes, block_bytes=DEFAULT_BLOCK_BYTES,
                    queries_per_block=None, dtype_size=4):
        """Half the budget for the live copies of one block (capping `block_bytes`), half for
        kept results; `dtype_size` is the bytes of one attention element."""
        by_budget = memory_budget_bytes // 2 // (LIVE_ATTENTION_COPIES * dtype_size)
        block_elements = max(1, min(block_bytes // dtype_size, by_budget))
        return cls(block_elements, max(memory_budget_bytes // 2, 0), queries_per_block)

    def block_rows(self, class_positions, num_rows, query_positions):
        """Query rows per block against one class of `class_positions` support positions, out of
        `num_rows` rows of `query_positions` rows per query image (python ints or int32
        tensors): at least 1, at most `num_rows`."""
        if self.queries_per_block is not None:
            rows = tf.maximum(1, self.queries_per_block * query_positions)
        else:
            rows = tf.maximum(1, self.block_elements // tf.maximum(class_positions, 1))
        return tf.minimum(rows, tf.maximum(num_rows, 1))

    def num_blocks(self, class_positions, num_rows, query_positions):
        """Blocks for one class: `ceil(num_rows / block_rows)`."""
        rows = self.block_rows(class_positions, num_rows, query_positions)
        return (num_rows + rows - 1) // rows


def _static_bool(x):
    """The python bool of a python or constant tensor bool, else None (decided at run time)."""
    value = tf.get_static_value(x)
    return None if value is None else bool(value)


def _as_bytes(element_dtype, *dims):
    """Bytes of a tensor of `dims` (float64, so that the product cannot overflow)."""
    size = float(element_dtype.size)
    for d in dims:
        size *= tf.cast(d, tf.float64)
    return size


def _loop(n, body, loop_vars):
    """`body(i, *loop_vars)` for i < n, sequentially; returns the final loop_vars."""
    return tf.while_loop(lambda i, *_: i < n, body, (tf.constant(0),) + tuple(loop_vars),
                         parallel_iterations=1)[1:]


def _block_array(element_dtype, size=0, dynamic=False):
    return tf.TensorArray(element_dtype, size=size, dynamic_size=dynamic, infer_shape=False,
                          element_shape=[None, None])


def _keep(how, ta, n, x, used, pool):
    """Writes x (or, when it does not fit in `pool` beyond `used`, none of its rows) as element
    n of ta; returns the array and the bytes used."""
    if how is True:
        return ta.write(n, x), used
    size = _as_bytes(x.dtype, tf.shape(x)[0], tf.shape(x)[1])
    fits = used + size <= pool
    return ta.write(n, x[:tf.where(fits, tf.shape(x)[0], 0)]), used + tf.where(fits, size, 0.0)


def _kept_or(how, ta, n, compute_fn):
    """Element n of ta if it was kept, else compute_fn()."""
    if how is True:
        return ta.read(n)
    if how is False:
        return compute_fn()
    x = ta.read(n)
    return tf.cond(tf.shape(x)[0] > 0, lambda: x, compute_fn)


class _Kernel:
    """The constants of one call of `blocked_class_distances` and its two passes.

    Blocks, scores and their exp are in the compute dtype; softmax maxima and denominators,
    prototypes, distances and gradient sums in float32 for float16/bfloat16 inputs. float16's
    range (65504) cannot hold an unnormalised prototype (a sum over a class's positions), so
    its prototype matmuls run in float32; bfloat16 has float32's range, and its matmuls
    accumulate in float32 anyway.
    """

    def __init__(self, support_keys, support_values, class_bounds, query_keys, scale, plan,
                 query_positions):
        self.dtype = dtype = support_keys.dtype
        self.stats = tf.float32 if dtype in (tf.float16, tf.bfloat16) else dtype
        self.proto_dtype = self.stats if dtype == tf.float16 else dtype
        self.class_bounds = class_bounds
        self.scale = scale
        self.plan = plan
        self.query_positions = query_positions
        self.num_classes = tf.size(class_bounds) - 1
        self.num_rows = tf.shape(query_keys)[0]
        self.key_dim = tf.shape(support_keys)[1]
        self.val_dim = tf.shape(support_values)[1]
        self._choose_what_to_keep(tf.shape(support_keys)[0])

    def _choose_what_to_keep(self, num_support):
        """True (every block), False (none) or "some" (blocks in order while the bytes last,
        decided at run time), for the prototypes and for the attention blocks."""
        proto_total = _as_bytes(self.stats, self.num_rows, self.num_classes, self.val_dim + 1)
        attention_total = _as_bytes(self.dtype, self.num_rows, num_support)
        keep_bytes = self.plan.keep_bytes
        self.proto_pool = tf.constant(float(max(keep_bytes, 0)), tf.float64)
        self.attention_pool = tf.maximum(self.proto_pool - proto_total, 0.0)

        def mode(total, pool):
            if keep_bytes <= 0 or _static_bool(pool <= 0.0):
                return False
            if _static_bool(total <= pool):
                return True
            return "some"

        self.keep_prototypes = mode(proto_total, self.proto_pool)
        self.keep_attention = mode(attention_total, self.attention_pool)

    def class_blocks(self, c):
        """`(lo, hi, rows, num_blocks)` of class c: its support rows and its query blocks."""
        lo, hi = self.class_bounds[c], self.class_bounds[c + 1]
        rows = self.plan.block_rows(hi - lo, self.num_rows, self.query_positions)
        return lo, hi, rows, (self.num_rows + rows - 1) // rows

    def block_bounds(self, i, rows):
        return i * rows, tf.minimum(i * rows + rows, self.num_rows)

    def prototypes(self, e, vc):
        """Unnormalised prototypes and softmax denominators `[rows, val_dim + 1]`."""
        return tf.cast(tf.matmul(tf.cast(e, self.proto_dtype), vc), self.stats)

    # ------------------------------------------------------------------------- forward

    def forward(self, sk, sv_aug, qs, qv_stats):
        """`(distances [R, K], row maxima [K, R], kept prototypes, kept attention blocks)`;
        the kept arrays hold one element per (class, block) in loop order."""
        def forward_class(c, n, used, dist_ta, max_ta, proto_ta, att_ta):
            n, used, d_ta, m_ta, proto_ta, att_ta = self._forward_class(
                c, n, used, proto_ta, att_ta, sk, sv_aug, qs, qv_stats)
            return (c + 1, n, used, dist_ta.write(c, d_ta.concat()),
                    max_ta.write(c, m_ta.concat()), proto_ta, att_ta)

        vectors = lambda: tf.TensorArray(self.stats, size=self.num_classes,  # noqa: E731
                                         element_shape=[None])
        _, _, dist_ta, max_ta, proto_ta, att_ta = _loop(self.num_classes, forward_class, (
            tf.constant(0), tf.zeros([2], tf.float64), vectors(), vectors(),
            _block_array(self.stats, dynamic=True), _block_array(self.dtype, dynamic=True)))
        return tf.transpose(dist_ta.stack()), max_ta.stack(), proto_ta, att_ta

    def _forward_class(self, c, n, used, proto_ta, att_ta, sk, sv_aug, qs, qv_stats):
        lo, hi, rows, num_blocks = self.class_blocks(c)
        kc, vc = sk[lo:hi], sv_aug[lo:hi]

        def block(i, n, used, d_ta, m_ta, proto_ta, att_ta):
            a, b = self.block_bounds(i, rows)
            scores = tf.matmul(qs[a:b], kc, transpose_b=True)  # [r, Sc]
            row_max = tf.reduce_max(scores, axis=1, keepdims=True)
            e = tf.exp(scores - row_max)
            tz = self.prototypes(e, vc)  # [r, dv + 1]: unnormalised prototype, denominator
            t = tz[:, :-1] / tz[:, -1:]
            d = tf.reduce_sum(tf.square(t - qv_stats[a:b]), axis=1)
            used_proto, used_attention = used[0], used[1]
            if self.keep_prototypes is not False:
                proto_ta, used_proto = _keep(self.keep_prototypes, proto_ta, n, tz, used_proto,
                                             self.proto_pool)
            if self.keep_attention is not False:
                att_ta, used_attention = _keep(self.keep_attention, att_ta, n, e,
                                               used_attention, self.attention_pool)
            return (i + 1, n + 1, tf.stack([used_proto, used_attention]), d_ta.write(i, d),
                    m_ta.write(i, tf.cast(row_max[:, 0], self.stats)), proto_ta, att_ta)

        vectors = lambda: tf.TensorArray(self.stats, size=num_blocks,  # noqa: E731
                                         infer_shape=False, element_shape=[None])
        return _loop(num_blocks, block, (n, used, vectors(), vectors(), proto_ta, att_ta))

    # ------------------------------------------------------------------------- backward

    def backward(self, upstream, saved, sk, sv_aug, qs, qv_stats):
        """Gradients `(d_sk, d_sv, d_qk, -d_qv)` in the stats dtype, from `saved` = the row
        maxima and kept arrays of `forward`."""
        sk_aug = tf.concat([sk, tf.ones([tf.shape(sk)[0], 1], self.dtype)], axis=1)
        upstream = tf.cast(upstream, self.stats)

        def backward_class(c, n, dk_ta, dv_ta, dq, neg_du):
            n, dkc, dvc, dq_ta, du_ta = self._backward_class(
                c, n, upstream, saved, sk, sk_aug, sv_aug, qs, qv_stats)
            return (c + 1, n, dk_ta.write(c, dkc), dv_ta.write(c, dvc), dq + dq_ta.concat(),
                    neg_du + du_ta.concat())

        _, dk_ta, dv_ta, d_qk, neg_d_qv = _loop(self.num_classes, backward_class, (
            tf.constant(0), _block_array(self.stats, self.num_classes),
            _block_array(self.stats, self.num_classes), tf.zeros_like(qs, self.stats),
            tf.zeros_like(qv_stats, self.stats)))
        return dk_ta.concat(), dv_ta.concat(), d_qk, neg_d_qv

    def _backward_class(self, c, n, upstream, saved, sk, sk_aug, sv_aug, qs, qv_stats):
        row_maxes, proto_ta, att_ta = saved
        lo, hi, rows, num_blocks = self.class_blocks(c)
        kc, kc_aug, vc = sk[lo:hi], sk_aug[lo:hi], sv_aug[lo:hi]
        g2 = 2.0 * upstream[:, c:c + 1]
        neg_max = -row_maxes[c][:, None]

        def block(i, n, dkc, dvc, dq_ta, du_ta):
            a, b = self.block_bounds(i, rows)

            def recompute_attention():
                q_aug = tf.concat([qs[a:b], tf.cast(neg_max[a:b], self.dtype)], axis=1)
                return tf.exp(tf.matmul(q_aug, kc_aug, transpose_b=True))  # [r, Sc]

            e = _kept_or(self.keep_attention, att_ta, n, recompute_attention)
            tz = _kept_or(self.keep_prototypes, proto_ta, n, lambda: self.prototypes(e, vc))
            inv_z = 1.0 / tz[:, -1:]
            t = tz[:, :-1] * inv_z
            delta = g2[a:b] * (t - qv_stats[a:b])  # d objective / d prototype, [r, dv]
            delta_z = delta * inv_z
            dot = tf.reduce_sum(t * delta_z, axis=1, keepdims=True)
            d_scores = e * tf.cast(tf.matmul(
                tf.cast(tf.concat([delta_z, -dot], axis=1), self.proto_dtype), vc,
                transpose_b=True), self.dtype)  # [r, Sc]
            dvc += tf.cast(tf.matmul(e, tf.cast(delta_z, self.dtype), transpose_a=True),
                           self.stats)
            dkc += tf.cast(tf.matmul(d_scores, qs[a:b], transpose_a=True), self.stats)
            dq_ta = dq_ta.write(i, tf.cast(tf.matmul(d_scores, kc), self.stats) * self.scale)
            return i + 1, n + 1, dkc, dvc, dq_ta, du_ta.write(i, delta)

        return _loop(num_blocks, block, (
            n, tf.zeros([hi - lo, self.key_dim], self.stats),
            tf.zeros([hi - lo, self.val_dim], self.stats),
            _block_array(self.stats, num_blocks), _block_array(self.stats, num_blocks)))


def blocked_class_distances(support_keys, support_values, class_bounds, query_keys, query_values,
                            scale, plan, query_positions):
    """Per-query-position squared distances to every query-aligned prototype, in blocks.

    Args:
      support_keys: `[S, query_dim]` support positions **sorted by class** (class c owns rows
        `class_bounds[c]:class_bounds[c + 1]`).
      support_values: `[S, val_dim]`, same order.
      class_bounds: int32 `[K + 1]` row offsets, increasing, every class non-empty.
      query_keys: `[R, query_dim]` flattened query positions.
      query_values: `[R, val_dim]`.
      scale: python float multiplying the dot products.
      plan: a `BlockPlan`. Its `keep_bytes` is memory the forward pass may use to keep, per
        block, results for the backward pass: first the unnormalised prototypes and softmax
        denominators (`rows * (val_dim + 1)` elements per block; one matmul less in the backward
        pass), then, with what remains once every block's prototypes are kept, the exp blocks
        themselves (`rows * class positions` elements; one matmul and one exp less). Blocks are
        taken in loop order until the bytes run out; the rest are recomputed.
      query_positions: int32, rows per query image (for `plan.queries_per_block`).

    Returns:
      `[R, K]`: `||v_r - t_{c,r}||^2` summed over channels (not yet averaged over positions);
      float32 for float16/bfloat16 inputs (which get gradients of their own dtype).

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
    kernel = _Kernel(support_keys, support_values, class_bounds, query_keys, scale, plan,
                     query_positions)

    @tf.custom_gradient
    def distances_fn(sk, sv, qk, qv):
        qs = qk * scale
        qv_stats = tf.cast(qv, kernel.stats)
        sv_aug = tf.concat([tf.cast(sv, kernel.proto_dtype),
                            tf.ones([tf.shape(sv)[0], 1], kernel.proto_dtype)], axis=1)
        distances, row_maxes, proto_ta, att_ta = kernel.forward(sk, sv_aug, qs, qv_stats)

        def grad(upstream):
            d_sk, d_sv, d_qk, neg_d_qv = kernel.backward(
                upstream, (row_maxes, proto_ta, att_ta), sk, sv_aug, qs, qv_stats)
            return (tf.cast(tf.reshape(d_sk, tf.shape(sk)), sk.dtype),
                    tf.cast(tf.reshape(d_sv, tf.shape(sv)), sv.dtype),
                    tf.cast(d_qk, qk.dtype), tf.cast(-neg_d_qv, qv.dtype))

        return distances, grad

    return distances_fn(support_keys, support_values, query_keys, query_values)
