"""The description of each episode: new ones from the sampler, or reused as configured.

`EpisodeDescriptionConfig.episode_description_switch_frequency` uses each description for
several consecutive episodes; `num_unique_descriptions` draws a fixed pool of descriptions and
cycles through it.
"""

import numpy as np


class DescriptionSource:
    """Episode descriptions with `switch_frequency` reuse and a `num_unique_descriptions` pool.

    Shared by every iteration of a pipeline (like the sampler it wraps). The first
    description is drawn at construction, so a request the sampler cannot satisfy fails when
    the pipeline is built rather than on the first `next()`; the sequence is the same either
    way.

    Args:
      sampler: an `EpisodeDescriptionSampler` (anything with `sample_episode_description()`).
      switch_frequency: each description is used for this many consecutive episodes.
      num_unique_descriptions: > 0: draw that many descriptions once, then cycle through them,
        in a fresh random order each cycle.
      rng: numpy `RandomState` for the cycle order (None: an unseeded one).
    """

    def __init__(self, sampler, switch_frequency=1, num_unique_descriptions=0, rng=None):
        if int(switch_frequency) < 1:
            raise ValueError("EpisodeDescriptionConfig.episode_description_switch_frequency "
                             f"must be >= 1, got {switch_frequency}")
        if int(num_unique_descriptions) < 0:
            raise ValueError("EpisodeDescriptionConfig.num_unique_descriptions must be >= 0, "
                             f"got {num_unique_descriptions}")
        self.sampler = sampler
        self.switch_frequency = int(switch_frequency)
        self._rng = rng if rng is not None else np.random.RandomState()
        self._pool = None
        self._order = []
        if num_unique_descriptions:
            self._pool = [sampler.sample_episode_description()
                          for _ in range(int(num_unique_descriptions))]
        self._current = self._draw()
        self._uses = 0

    def _draw(self):
        if self._pool is None:
            return self.sampler.sample_episode_description()
        if not self._order:
            self._order = list(self._rng.permutation(len(self._pool)))
        return self._pool[self._order.pop(0)]

    def next_description(self):
        if self._uses == self.switch_frequency:
            self._current = self._draw()
            self._uses = 0
        self._uses += 1
        return self._current
