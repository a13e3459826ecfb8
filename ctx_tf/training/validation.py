"""Evaluation during and after training, through the one evaluation protocol.

Validation, the final test of `python -m ctx_tf.train` and `python -m ctx_tf.evaluate` all run
`ctx_tf.evaluation.protocol.evaluate` with the protocol's per-source episode seeds, and write
the same files (`ctx_tf.evaluation.results.write_results`).
"""

import math

import numpy as np

from ctx_tf.data import dataset_spec as spec_lib
from ctx_tf.data.config import DataConfig
from ctx_tf.data.episode import Episode
from ctx_tf.evaluation import attention_figure
from ctx_tf.evaluation import benchmark_versions
from ctx_tf.evaluation import protocol
from ctx_tf.evaluation import results as results_lib

_SPLITS = {"valid": spec_lib.Split.VALID, "test": spec_lib.Split.TEST}


def overall(results):
    """(mean, ci95) over the sources of a results mapping: the mean of the per-source means
    (as the official validation), its CI from the per-source CIs (independent sources)."""
    entries = list(results["sources"].values())
    mean = sum(e["mean"] for e in entries) / len(entries)
    ci95 = math.sqrt(sum(e["ci95"] ** 2 for e in entries)) / len(entries)
    return mean, ci95


class Validation:
    """The evaluation datasets of a run and how many episodes, with which seed, it takes.

    `episodes_fn(split, seed)` (tests) replaces the records: an iterable of `Episode` per
    source, `split` being 'valid' or 'test'.
    """

    def __init__(self, records_root_dir, sources, num_episodes, seed, data_config=None,
                 episode_config=None, episodes_fn=None, benchmark=None):
        self.records_root_dir = records_root_dir
        # Injected episodes without dataset names are one source.
        self.sources = list(sources) or (["episodes"] if episodes_fn is not None else [])
        self.num_episodes = num_episodes
        self.seed = seed
        self.data_config = data_config or DataConfig()
        self.episode_config = episode_config
        self.episodes_fn = episodes_fn
        self.benchmark = benchmark or benchmark_versions.DEFAULT  # named in the results
        self._figure_episode = None

    def check(self, split="valid"):
        """Fails now (not at the first validation) if a source or its classes are missing."""
        if self.episodes_fn is None:
            if not self.records_root_dir:
                raise protocol.EvaluationError("no records root: pass --records_root_dir")
            protocol.load_sources(self.records_root_dir, self.sources, _SPLITS[split])

    def setup(self, split="valid", num_episodes=None, seed=None):
        data = self.data_config
        return protocol.EvaluationSetup(
            records_root=self.records_root_dir, sources=tuple(self.sources),
            split=_SPLITS[split], num_episodes=num_episodes or self.num_episodes,
            seed=self.seed if seed is None else seed, image_size=data.image_height,
            shuffle_buffer_size=data.shuffle_buffer_size,
            read_buffer_size_bytes=data.read_buffer_size_bytes,
            num_prefetch=data.num_prefetch, episode_config=self.episode_config,
            benchmark=self.benchmark)

    def run(self, predict_fn, split="valid", num_episodes=None, seed=None, floor=False,
            log=None, progress=None):
        """The protocol's results mapping (no model section) of `split`."""
        episodes_fn = None
        if self.episodes_fn is not None:
            episodes_fn = lambda source, split_, seed_: self.episodes_fn(split, seed_)  # noqa: E731
        return protocol.evaluate(
            None, self.setup(split, num_episodes, seed), progress=progress,
            log=log or (lambda message: None), predict_fn=predict_fn,
            episodes_fn=episodes_fn, floor=floor)

    def _first_episode(self, split):
        """The first `split` episode of the first source under the protocol seed (numpy)."""
        source = self.sources[0]
        if self.episodes_fn is not None:
            element = next(iter(self.episodes_fn(split, protocol.source_seed(self.seed, source))))
        else:
            spec = protocol.load_sources(self.records_root_dir, [source], _SPLITS[split])[source]
            element = next(iter(protocol.source_episodes(self.setup(split, 1), spec)))
        episode = element[0] if isinstance(element, tuple) and len(element) == 2 else element
        return Episode(*[np.asarray(t) for t in episode])

    def attention_png(self, learner, split="valid"):
        """PNG of the attention figure of one fixed query (the first of the first episode,
        drawn once), small and cheap; None for a learner without attention."""
        if not attention_figure.has_attention(learner):
            return None
        if self._figure_episode is None:
            self._figure_episode = self._first_episode(split)
        [(_, png, _)] = attention_figure.episode_figures(
            learner, self._figure_episode, [0], max_shots=3, class_ids=False)
        return png

    @staticmethod
    def write(results, output_dir):
        return results_lib.write_results(output_dir, results, published=())
