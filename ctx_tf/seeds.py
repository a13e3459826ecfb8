"""The seed derivation: child seeds from a parent seed and keys (ints or names), in two widths.

Both widths come from one `numpy.random.SeedSequence` of the parent seed and the keys:
`derive_seed` is its first 32-bit word (a run's training streams, evaluation sources, anything
a `numpy.random.RandomState` takes); `derive_pipeline_seed` combines its first two words into a
non-negative 63-bit int (the int64 seeds of an episode or batch pipeline's streams: class
shuffles, source choice, SimCLR conversion, ...). The same seed and keys give the same first
word in both, so the widths are one derivation, not two.
"""

import zlib

import numpy as np


def _seed_words(seed, keys, count):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    entropy = [int(seed)] + [zlib.crc32(k.encode("utf-8")) if isinstance(k, str) else int(k)
                             for k in keys]
    return [int(word) for word in np.random.SeedSequence(entropy).generate_state(count, np.uint32)]


def derive_seed(seed, *keys):
    """A 32-bit seed that depends only on `seed` and `keys`, in order.

    Names are hashed with CRC-32, so `derive_seed(seed, "omniglot")` (an evaluation source) and
    `derive_seed(seed, step)` (a training stream) are stable across processes and releases.
    """
    return _seed_words(seed, keys, 1)[0]


def derive_pipeline_seed(seed, *keys):
    """A 63-bit seed (a non-negative int64) that depends only on `seed` and `keys`, in order:
    the seed of one stream of a pipeline seeded with `seed` (`ctx_tf.data.pipeline`)."""
    high, low = _seed_words(seed, keys, 2)
    return ((high << 31) ^ low) & (2**63 - 1)
