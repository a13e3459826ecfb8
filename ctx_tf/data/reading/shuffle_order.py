"""The epoch orders of a reshuffling tf.data shuffle, computed in plain Python.

`ShuffleOrders(n, buffer_size, seed, global_seed)` gives, epoch after epoch, the order in
which `tf.data.Dataset.range(n).shuffle(buffer_size, seed, reshuffle_each_iteration=True)
.repeat()` emits `0..n-1` when TensorFlow's global seed is `global_seed`. It follows the
algorithm of TensorFlow's shuffle kernels (TF 2.15 and 2.21 agree), reimplemented here:

* Seeds. The Python layer turns the op seed and the global seed into two 31-bit seeds
  (`tf_seed_pair`). With reshuffling, the dataset owns a *seed stream*: a Philox4x32-10
  generator keyed by that pair, read one 32-bit value at a time. Each epoch (each new
  iterator of the shuffle under `repeat()`) takes the next two values of that stream as the
  key and counter of its own Philox generator. The stream belongs to the dataset, so a second
  iteration of the same dataset continues it instead of starting over.
* One epoch. A ring buffer of `min(buffer_size, n)` slots is filled with the first elements
  in order. For each output, the next 32-bit value `r` of the epoch's generator picks slot
  `(first + r % filled) % size`, where `first` is the ring position of the oldest element
  and `filled` the number of elements held; the picked element is emitted, the oldest one
  moves into its slot, and the freed oldest slot takes the next input element, if any.

`tests/data/reading/test_shuffle_order.py` checks the result against TensorFlow's own shuffle for
random sizes, buffers and seeds, on every TensorFlow version CI runs. One deliberate
difference: TensorFlow's iterators may run ahead of their consumer (its default
`inject_prefetch` optimization), starting an epoch nobody reads and so consuming its seeds;
how far they run ahead depends on thread timing, so TensorFlow itself gives no fixed order to
a second iteration. Here an epoch takes its seeds only when it is read, which is TensorFlow's
order without read-ahead (the first iteration is never affected).

Unseeded shuffles (`seed=None`) take a fresh random seed pair, as TensorFlow does.
"""

import threading

import numpy as np

# Philox4x32-10 constants (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3").
_MULTIPLIER_0, _MULTIPLIER_1 = 0xD2511F53, 0xCD9E8D57
_KEY_STEP_0, _KEY_STEP_1 = 0x9E3779B9, 0xBB67AE85
_ROUNDS = 10
_U32 = 0xFFFFFFFF
_U64 = (1 << 64) - 1
_U128 = (1 << 128) - 1

# TensorFlow's Python seed conventions (tensorflow/python/framework/random_seed.py).
MAX_SEED = 2**31 - 1
DEFAULT_GLOBAL_SEED = 87654321


def philox_block(counter, key):
    """The four 32-bit outputs of Philox4x32-10 for a 128-bit `counter` and 64-bit `key`."""
    x0, x1, x2, x3 = (counter & _U32, (counter >> 32) & _U32, (counter >> 64) & _U32,
                      counter >> 96)
    k0, k1 = key & _U32, key >> 32
    for _ in range(_ROUNDS):
        product_0 = _MULTIPLIER_0 * x0
        product_1 = _MULTIPLIER_1 * x2
        x0, x1, x2, x3 = ((product_1 >> 32) ^ x1 ^ k0, product_1 & _U32,
                          (product_0 >> 32) ^ x3 ^ k1, product_0 & _U32)
        k0 = (k0 + _KEY_STEP_0) & _U32
        k1 = (k1 + _KEY_STEP_1) & _U32
    return x0, x1, x2, x3


class PhiloxStream:
    """32-bit values, one at a time, from TensorFlow's `PhiloxRandom(seed, seed2)`.

    The low and high words of `seed` form the key; `seed2` fills the upper 64 bits of the
    counter, whose lower 64 bits start at zero. Each counter value gives four outputs, used in
    order, then the counter is incremented.
    """

    def __init__(self, seed, seed2):
        self._key = int(seed) & _U64
        self._counter = (int(seed2) & _U64) << 64
        self._block = ()
        self._used = 0

    def next_u32(self):
        if self._used == len(self._block):
            self._block = philox_block(self._counter, self._key)
            self._counter = (self._counter + 1) & _U128
            self._used = 0
        self._used += 1
        return self._block[self._used - 1]


def tf_seed_pair(seed, global_seed):
    """The `(seed, seed2)` TensorFlow gives a seeded op: `global_seed` None means no global
    seed was set; seeds are reduced modulo 2**31 - 1 and (0, 0) (TensorFlow's "unseeded")
    becomes (0, 2**31 - 1)."""
    first = DEFAULT_GLOBAL_SEED if global_seed is None else int(global_seed) % MAX_SEED
    pair = (first, int(seed) % MAX_SEED)
    return (0, MAX_SEED) if pair == (0, 0) else pair


def shuffled_epoch(num_elements, buffer_size, generator):
    """One epoch's order of `range(num_elements)` through a shuffle buffer of `buffer_size`,
    drawing from `generator` (a `PhiloxStream`)."""
    size = min(buffer_size, num_elements)
    ring = list(range(size))
    oldest, next_input = 0, size  # counts: elements emitted, elements read in
    order = []
    while oldest < next_input:
        pick = (oldest + generator.next_u32() % (next_input - oldest)) % size
        freed = oldest % size
        order.append(ring[pick])
        ring[pick] = ring[freed]
        oldest += 1
        if next_input < num_elements:
            ring[freed] = next_input
            next_input += 1
    return order


class ShuffleOrders:
    """The epoch orders of `range(num_elements).shuffle(buffer_size, seed,
    reshuffle_each_iteration=True).repeat()` under global seed `global_seed` (see the module).

    Iterating yields one epoch's order (a list of ints) at a time, forever. All iterators share
    the seed stream, as all iterations of one tf.data dataset do.

    Args:
      num_elements: elements per epoch (>= 1).
      buffer_size: shuffle buffer size (>= 1).
      seed: the shuffle's op seed; None: unseeded (fresh random seeds).
      global_seed: TensorFlow's global seed when the dataset would be built (None: not set).
    """

    def __init__(self, num_elements, buffer_size, seed, global_seed=None):
        if num_elements < 1 or buffer_size < 1:
            raise ValueError(f"need num_elements >= 1 and buffer_size >= 1, got "
                             f"{num_elements} and {buffer_size}")
        self.num_elements = int(num_elements)
        self.buffer_size = int(buffer_size)
        if seed is None:
            pair = np.random.default_rng().integers(1, 2**63, size=2).tolist()
        else:
            pair = tf_seed_pair(seed, global_seed)
        self._seeds = PhiloxStream(*pair)
        self._lock = threading.Lock()  # iterators may run in different threads

    def next_epoch(self):
        """The order of the next epoch of the stream (shared by all iterators)."""
        with self._lock:
            generator = PhiloxStream(self._seeds.next_u32(), self._seeds.next_u32())
        return shuffled_epoch(self.num_elements, self.buffer_size, generator)

    def __iter__(self):
        while True:
            yield self.next_epoch()
