"""The raw-pixel floor: nearest-centroid accuracy on pixels, next to a learner's accuracy.

Each query goes to the class whose mean support image is nearest in squared Euclidean
distance (ties to the lowest class label). The distances are computed in float32 by the
expansion `|c|^2 - 2 q.c` (the query's own `|q|^2` does not change its nearest centroid), a
few queries and a block of pixels at a time, after moving the origin to the mean centroid, so
a 224 px 50-way episode needs tens of MB besides its images rather than a query x class x
pixel tensor.

The decisions are the float64 ones (`((q - c) ** 2).sum()` with float64 class means): a
query whose best and second-best float32 scores are closer than a bound on the float32
rounding error (`_error_bound`) is decided again in float64 over the classes within that
bound, so rounding never changes an answer.
"""

import numpy as np

FLOOR_NAME = "Nearest centroid, raw pixels (no learning)"

_QUERY_CHUNK = 16  # queries per float32 block product
_PIXEL_BLOCK = 4096  # pixels summed in float32 before a float64 accumulation
_U32 = float(np.finfo(np.float32).eps) / 2  # unit roundoff of float32


def _flat(images):
    images = np.asarray(images)
    return images.reshape(len(images), -1)


def _class_mean64(support, labels, c):
    """The float64 mean of class `c`'s support rows, summed row by row as NumPy's
    `mean(axis=0)` does, one float64 row in memory at a time."""
    rows = np.flatnonzero(labels == c)
    total = np.zeros(support.shape[1], np.float64)
    for r in rows:
        total += support[r]
    return total / len(rows)


def _gamma(n):
    """Higham's gamma_n: the relative error bound of an n-term float32 dot product."""
    return n * _U32 / (1 - n * _U32)


def _blocked_dot(a, b_blocks):
    """`a @ b.T` (float32 inputs, `b` as its contiguous blocks of `_PIXEL_BLOCK` pixels), each
    block in float32, the blocks summed in float64."""
    out = np.zeros((len(a), len(b_blocks[0])), np.float64)
    start = 0
    for block in b_blocks:
        # einsum, not BLAS: BLAS threads crawl on a busy machine, einsum's loop does not.
        out += np.einsum("ij,kj->ik", a[:, start:start + block.shape[1]], block)
        start += block.shape[1]
    return out


def _blocked_sq_norms(a):
    """Squared row norms of float32 `a`, summed as `_blocked_dot` sums."""
    out = np.zeros(len(a), np.float64)
    for start in range(0, a.shape[1], _PIXEL_BLOCK):
        part = a[:, start:start + _PIXEL_BLOCK]
        out += np.einsum("ij,ij->i", part, part)
    return out


def _error_bound(query_norms, centroid_norms, mean_norms):
    """Per query, a bound on |float32 score - float64 squared distance - |q|^2| over classes.

    Rounding of the class means to float32 and of the shift to the new origin moves each
    vector by at most u times its magnitude; the blocked products add at most gamma_B times
    |q'||c'| and |c'|^2 (float64 accumulation across blocks is negligible beside them). The
    constant 4 covers the cross terms and the float64 rounding of the reference itself.
    """
    shifted = query_norms + centroid_norms.max()
    full = shifted + mean_norms.max()
    return 4.0 * (_U32 * full ** 2 + _gamma(_PIXEL_BLOCK) * shifted ** 2)


def nearest_centroid_predictions(episode):
    """The class label nearest-centroid assigns to each query of `episode` (raw pixels)."""
    support = _flat(episode.support_images)
    query = _flat(episode.query_images)
    labels = np.asarray(episode.support_labels)
    way = int(labels.max()) + 1
    # The float32 centroids, held as contiguous pixel blocks (as `_blocked_dot` takes them).
    pixels = support.shape[1]
    edges = list(range(0, pixels, _PIXEL_BLOCK)) + [pixels]
    centroids = [np.empty((way, b - a), np.float32) for a, b in zip(edges, edges[1:])]
    mean_norms = np.empty(way, np.float64)
    for c in range(way):  # one float64 mean at a time
        mean64 = _class_mean64(support, labels, c)
        mean_norms[c] = np.linalg.norm(mean64)
        for block, a, b in zip(centroids, edges, edges[1:]):
            block[c] = mean64[a:b]
    origin = np.concatenate([b.mean(axis=0, dtype=np.float64) for b in centroids])
    origin = origin.astype(np.float32)
    centroid_sq = np.zeros(way, np.float64)
    for block, a, b in zip(centroids, edges, edges[1:]):
        block -= origin[a:b]
        centroid_sq += np.einsum("ij,ij->i", block, block)
    centroid_norms = np.sqrt(centroid_sq)
    predictions = np.empty(len(query), np.int64)
    for start in range(0, len(query), _QUERY_CHUNK):
        block = query[start:start + _QUERY_CHUNK].astype(np.float32) - origin
        scores = centroid_sq[None, :] - 2.0 * _blocked_dot(block, centroids)
        bound = _error_bound(np.sqrt(_blocked_sq_norms(block)), centroid_norms, mean_norms)
        best = scores.min(axis=1)
        for i in range(len(block)):
            candidates = np.flatnonzero(scores[i] <= best[i] + 2.0 * bound[i])
            if len(candidates) == 1:
                predictions[start + i] = candidates[0]
                continue
            q64 = query[start + i].astype(np.float64)
            exact = [((q64 - _class_mean64(support, labels, c)) ** 2).sum() for c in candidates]
            predictions[start + i] = candidates[int(np.argmin(exact))]
    return predictions


def nearest_centroid_accuracy(episode):
    """Query accuracy of nearest-centroid (squared Euclidean) on an episode's raw pixels."""
    predictions = nearest_centroid_predictions(episode)
    return float((predictions == np.asarray(episode.query_labels)).mean())
