"""Evaluation during and after training, through the one evaluation path.

Validation, the final test of `python -m ctx_tf.train` and `python -m ctx_tf.evaluate` all run
an `ctx_tf.evaluation.evaluator.Evaluator`: the protocol with its per-source episode seeds,
progress lines with an ETA, a journal that survives a kill, the same files.

With several validation sources, ctx_tf's default (`Trainer.validation_pipeline =
"per_source"`) evaluates each source's own episodes and averages the per-source means; the
official trainer's (`"multisource"`) draws all validation episodes from one pipeline that
picks each episode's source at random, and averages over episodes (BUILD_NOTES.md).
"""

import math
import os

import numpy as np

from ctx_tf import checkpoints
from ctx_tf.data import dataset_spec as spec_lib
from ctx_tf.data.config import DataConfig
from ctx_tf.data.episode import Episode
from ctx_tf.evaluation import attention_figure
from ctx_tf.evaluation import benchmark_versions
from ctx_tf.evaluation import evaluator as evaluator_lib
from ctx_tf.evaluation import protocol
from ctx_tf.evaluation import sources as sources_lib
from ctx_tf.training.options import MULTISOURCE, ValidationOptions

_SPLITS = {"valid": spec_lib.Split.VALID, "test": spec_lib.Split.TEST}
PROGRESS_EVERY_SECONDS = 10.0


def overall(results):
    """(mean, ci95) over the entries of a results mapping: the mean of the per-source means,
    its CI from the per-source CIs (independent sources); a multi-source validation has one
    entry, whose mean is over all its episodes (as the official validation)."""
    entries = list(results["sources"].values())
    mean = sum(e["mean"] for e in entries) / len(entries)
    ci95 = math.sqrt(sum(e["ci95"] ** 2 for e in entries)) / len(entries)
    return mean, ci95


class Validation:
    """The evaluation datasets of a run and how they are evaluated.

    Args:
      records_root_dir, sources: the run's records root and eval datasets.
      options: `ValidationOptions` (episodes per source, protocol seed, pipeline, episode
        config).
      data_config: `DataConfig` of the run (image size, reader buffers).
      benchmark: the benchmark version the run trains for (named in the results).
      episodes_fn: `(split, seed) -> iterable of Episode` replaces the records (tests): one
        source.
    """

    def __init__(self, records_root_dir, sources, options=ValidationOptions(),
                 data_config=None, benchmark=None, episodes_fn=None):
        self.records_root_dir = records_root_dir
        # Injected episodes without dataset names are one source.
        self.sources = list(sources) or (["episodes"] if episodes_fn is not None else [])
        self.options = options
        self.num_episodes = options.num_episodes
        self.seed = options.seed
        self.data_config = data_config or DataConfig()
        self.episodes_fn = episodes_fn
        self.benchmark = benchmark or benchmark_versions.DEFAULT  # named in the results
        self._figure_episode = None

    def check(self, split="valid"):
        """Fails now (not at the first validation) if a source or its classes are missing."""
        if self.episodes_fn is None:
            sources_lib.load_sources(self.records_root_dir, self.sources, _SPLITS[split],
                                     "benchmark.eval_datasets")

    def setup(self, split="valid", num_episodes=None, seed=None):
        """The `EvaluationSetup` of `split`: validation episodes per source, its seed and
        pipeline; the final test passes its own `num_episodes` and `seed`, per source."""
        data = self.data_config
        return protocol.EvaluationSetup(
            records_root=self.records_root_dir, sources=tuple(self.sources),
            split=_SPLITS[split], num_episodes=num_episodes or self.num_episodes,
            seed=self.seed if seed is None else seed, image_size=data.image_height,
            shuffle_buffer_size=data.shuffle_buffer_size,
            read_buffer_size_bytes=data.read_buffer_size_bytes,
            num_prefetch=data.num_prefetch, episode_config=self.options.episode_config,
            benchmark=self.benchmark,
            multisource=split == "valid" and self.options.pipeline == MULTISOURCE)

    def evaluator(self, split, output_dir, identity, num_episodes=None, seed=None, log=None,
                  journal=True, replace_stale=False, progress_log=None):
        """The `Evaluator` of `split` writing to `output_dir` (`journal`: resumable)."""
        return evaluator_lib.Evaluator(
            self.setup(split, num_episodes, seed), output_dir, identity,
            log=log or (lambda message: None), progress_every_seconds=PROGRESS_EVERY_SECONDS,
            journal=journal, replace_stale=replace_stale, progress_log=progress_log)

    def episodes_fn_for(self, split):
        """The protocol's `episodes_fn` of the injected episodes (None: the records)."""
        if self.episodes_fn is None:
            return None
        return lambda source, split_, seed: self.episodes_fn(split, seed)

    def run(self, predict_fn, split="valid", num_episodes=None, seed=None, floor=False,
            log=None):
        """The protocol's results mapping (no model section) of `split`, nothing written."""
        evaluator = evaluator_lib.Evaluator(
            self.setup(split, num_episodes, seed), "", journal=False,
            log=log or (lambda message: None))
        return evaluator.evaluate(predict_fn=predict_fn, floor=floor,
                                  episodes_fn=self.episodes_fn_for(split))

    def validate(self, step, predict_fn, checkpoint_dir, chief=True, log=None):
        """Validates the model of `step`; writes `<checkpoint_dir>/valid/` (the chief only,
        resumable through its journal); returns `(mean, ci95)` (`overall`). `log` gets the
        progress lines only: a run validates often."""
        output_dir = os.path.join(checkpoint_dir, checkpoints.VALID_SUBDIR)
        evaluator = self.evaluator("valid", output_dir, {"step": int(step)}, journal=chief,
                                   replace_stale=True, progress_log=log)
        results = evaluator.evaluate(predict_fn=predict_fn, floor=False,
                                     episodes_fn=self.episodes_fn_for("valid"))
        if chief:
            evaluator.write(results)
        return overall(results)

    def _first_episode(self, split):
        """The first `split` episode of the first source under the protocol seed (numpy)."""
        source = self.sources[0]
        if self.episodes_fn is not None:
            element = next(iter(self.episodes_fn(split, protocol.source_seed(self.seed, source))))
        else:
            spec = sources_lib.load_sources(self.records_root_dir, [source], _SPLITS[split],
                                            "benchmark.eval_datasets")[source]
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
