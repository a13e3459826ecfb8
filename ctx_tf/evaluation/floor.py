"""The raw-pixel floor: nearest-centroid accuracy on pixels, next to a learner's accuracy."""

import numpy as np


def nearest_centroid_accuracy(episode):
    """Query accuracy of nearest-centroid (squared Euclidean) on an episode's raw pixels."""
    support = np.asarray(episode.support_images, np.float64)
    query = np.asarray(episode.query_images, np.float64)
    s_labels = np.asarray(episode.support_labels)
    q_labels = np.asarray(episode.query_labels)
    support = support.reshape(len(support), -1)
    query = query.reshape(len(query), -1)
    way = int(s_labels.max()) + 1
    centroids = np.stack([support[s_labels == c].mean(axis=0) for c in range(way)])
    distances = ((query[:, None, :] - centroids[None]) ** 2).sum(axis=-1)
    return float((distances.argmin(axis=1) == q_labels).mean())
