"""Oxford flowers in miniature (`write`): imagelabels.mat and jpg/image_NNNNN.jpg, with
interleaved labels (`labels`)."""

import numpy as np
import scipy.io

from tests.data.sources.raw_trees import tiny_jpeg


def write(root, labels):
    """imagelabels.mat (a 1 x N MATLAB double array, as released) and jpg/image_NNNNN.jpg."""
    (root / "jpg").mkdir(parents=True)
    scipy.io.savemat(root / "imagelabels.mat",
                     {"labels": np.asarray([labels], dtype=np.float64)})
    for n in range(len(labels)):
        (root / "jpg" / f"image_{n + 1:05d}.jpg").write_bytes(tiny_jpeg())
    return root


def labels():
    """The label (1-based class) of each image, in image order."""
    # Class c (1-based) gets c % 3 + 1 images, interleaved across classes.
    per_class = {c: c % 3 + 1 for c in range(1, 103)}
    labels = []
    while any(per_class.values()):
        for c in sorted(per_class, reverse=True):
            if per_class[c]:
                labels.append(c)
                per_class[c] -= 1
    return labels
