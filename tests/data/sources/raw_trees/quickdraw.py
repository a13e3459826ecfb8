"""quickdraw in miniature (`write`): one <class name>.npy of 28 x 28 drawings per class."""

import numpy as np


def save(path, array, version=None):
    """Writes `array` to `path` in .npy format `version` (default: the oldest that fits)."""
    with open(path, "wb") as f:
        np.lib.format.write_array(f, array, version=version)


def write(root, names):
    """<class name>.npy with k % 3 + 1 rows of 28x28 uint8 drawings (one in .npy format 2.0)."""
    root.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        rows = np.full((k % 3 + 1, 784), k % 256, dtype=np.uint8)
        save(root / f"{name}.npy", rows, version=(2, 0) if k == 0 else None)
    return root
