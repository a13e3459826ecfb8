"""Which classes an episode has and how many support and query images each: the episode
description, drawn as the official sampler draws it.

`config.EpisodeDescriptionConfig` (gin) says how episodes are composed; `sampler.
EpisodeDescriptionSampler` draws descriptions for one split of one source with NumPy only
(the draws themselves are in `draws`) and gives the fixed chunk sizes of the reader's id
stream (`compute_chunk_sizes`); `descriptions.DescriptionSource` reuses descriptions as the
configuration asks. `RNG` seeds every sampler built without its own generator.
"""

from ctx_tf.data.sampling.config import EpisodeDescriptionConfig
from ctx_tf.data.sampling.descriptions import DescriptionSource
from ctx_tf.data.sampling.sampler import (MAX_SPANNING_LEAVES_ELIGIBLE, RNG,
                                          EpisodeDescriptionSampler)

__all__ = ["MAX_SPANNING_LEAVES_ELIGIBLE", "RNG", "DescriptionSource",
           "EpisodeDescriptionConfig", "EpisodeDescriptionSampler"]
