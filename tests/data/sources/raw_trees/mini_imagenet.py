"""mini_imagenet in miniature (`write_caches`): the three cache pickles of few-shot-ssl-public."""

import pickle

import numpy as np

from ctx_tf.data.sources import mini_imagenet


def write_caches(root, rng, counts=None):
    """Pickles like few-shot-ssl-public's: two 5 x 4 RGB images per synset, class_dict rows
    listed out of order, keys in insertion (not sorted) order."""
    counts = counts or mini_imagenet.NUM_CLASSES
    synsets = {}
    for p, (part, n) in enumerate(counts.items()):
        names = [f"n0{p}{k:06d}" for k in range(n)][::-1]
        image_data = rng.integers(0, 256, size=(2 * n, 5, 4, 3), dtype=np.uint8)
        class_dict = {name: [2 * k + 1, 2 * k] for k, name in enumerate(names)}
        with open(mini_imagenet.cache_path(str(root), part), "wb") as f:
            pickle.dump({"image_data": image_data, "class_dict": class_dict}, f)
        synsets[part] = (sorted(names), class_dict, image_data)
    return synsets
