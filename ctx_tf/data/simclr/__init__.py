"""SimCLR episodes: an episode whose queries are augmented views of its support images.

`conversion` turns episodes into SimCLR episodes (a fraction of the training episodes),
`augment` and `color` are the SimCLR augmentations, `seed_pairs` the stateless seed pairs every
random op of them takes. `python -m ctx_tf.data.simclr_preview` draws one SimCLR episode.
"""

from ctx_tf.data.simclr.conversion import maybe_convert_to_simclr, to_simclr_episode

__all__ = ["maybe_convert_to_simclr", "to_simclr_episode"]
