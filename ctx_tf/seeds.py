"""The one seed derivation: a child seed from a parent seed and keys (ints or names)."""

import zlib

import numpy as np


def derive_seed(seed, *keys):
    """A 32-bit seed that depends only on `seed` and `keys`, in order.

    Names are hashed with CRC-32, so `derive_seed(seed, "omniglot")` (an evaluation source) and
    `derive_seed(seed, step)` (a training stream) are stable across processes and releases.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    entropy = [int(seed)] + [zlib.crc32(k.encode("utf-8")) if isinstance(k, str) else int(k)
                             for k in keys]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint32)[0])
