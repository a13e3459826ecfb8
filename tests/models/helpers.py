"""Shared by the model tests: the float64 NumPy reference of episodic batch norm
(`numpy_episodic_bn`, with its epsilon `EPS`) and random head inputs (`random_episode`)."""

import numpy as np

EPS = 1e-5


def numpy_episodic_bn(xs, xq, gamma, beta, gs, gq):
    """Support and query outputs (support moments for both) and the gradients of
    sum(gs * ys) + sum(gq * yq) w.r.t. xs, xq, gamma, beta, by hand in float64."""
    xs, xq, gamma, beta, gs, gq = (np.asarray(a, np.float64) for a in (xs, xq, gamma, beta, gs, gq))
    axes = (0, 1, 2)
    n = np.prod(xs.shape[:3])
    mu = xs.mean(axis=axes)
    var = (xs**2).mean(axis=axes) - mu**2
    r = 1.0 / np.sqrt(var + EPS)
    ys = (xs - mu) * r * gamma + beta
    yq = (xq - mu) * r * gamma + beta
    d_gamma = (gs * (xs - mu) * r).sum(axis=axes) + (gq * (xq - mu) * r).sum(axis=axes)
    d_beta = gs.sum(axis=axes) + gq.sum(axis=axes)
    # Explicit dependence of both outputs on mu and var, then mu, var on xs.
    d_mu = -(gs * gamma * r).sum(axis=axes) - (gq * gamma * r).sum(axis=axes)
    d_var = -0.5 * r**3 * ((gs * gamma * (xs - mu)).sum(axis=axes) + (gq * gamma * (xq - mu)).sum(axis=axes))
    d_xs = gs * gamma * r + d_mu / n + d_var * 2.0 * (xs - mu) / n
    d_xq = gq * gamma * r
    return ys, yq, d_xs, d_xq, d_gamma, d_beta, mu, var


def random_episode(rng, num_classes=3, channels=6, hw=(3, 3), query_hw=(2, 3), num_query=5,
                   feature_scale=1.0):
    """Random float32 support features (unequal shots, shuffled labels), their int32 labels and
    query features, as a CrossTransformer head takes them."""
    shots = rng.integers(1, 4, size=num_classes)  # unequal shots
    labels = np.repeat(np.arange(num_classes), shots)
    labels = rng.permutation(labels).astype(np.int32)  # shuffled label order
    fs = feature_scale * rng.standard_normal((len(labels),) + hw + (channels,))
    fq = feature_scale * rng.standard_normal((num_query,) + query_hw + (channels,))
    return fs.astype(np.float32), labels, fq.astype(np.float32)
