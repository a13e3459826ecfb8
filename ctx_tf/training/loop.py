"""The training loop: when to train, validate, checkpoint and summarise (docs/protocol.md §7).

`Trainer` owns the outer loop only and delegates each job to a small object:

* `step.Updater`: the learner, its optimizer and step counter, the replicated update;
* `validation.Validation`: validation and the final test through the one evaluation path
  (`ctx_tf.evaluation.evaluator`, the code of `python -m ctx_tf.evaluate`);
* `checkpointing.Checkpointing`: resume, save, the best checkpoint, the run's record;
* `summaries.Summaries`: TensorBoard summaries and the update lines;
* `episodes`: the training episodes.

It is configured by `TrainerOptions` (`options.trainer_options`, the gin `Trainer.*`
bindings with the official names) and the run's `RunInputs` (records, datasets, folders). The
loop knows no model class: the learner owns its forward pass.
"""

import dataclasses
import os
import time
from typing import Any, Optional, Sequence

import numpy as np

from ctx_tf import distribute as distribute_lib
from ctx_tf.data.dataset_spec import Split
from ctx_tf.evaluation import benchmark_versions
from ctx_tf.evaluation import sources as sources_lib
from ctx_tf.progress import format_accuracy
from ctx_tf.seeds import derive_seed
from ctx_tf.training import checkpointing as checkpointing_lib
from ctx_tf.training import step as step_lib
from ctx_tf.training import summaries as summaries_lib
from ctx_tf.training import validation as validation_lib
from ctx_tf.training.episodes import training_episodes
from ctx_tf.training.options import TrainerError, TrainerOptions, trainer_options

__all__ = ["RunInputs", "Trainer", "TrainerError", "TrainerOptions", "trainer_options"]


@dataclasses.dataclass(frozen=True)
class RunInputs:
    """What the launcher gives a run: its records, datasets and output folders.

    `manifest`: what the launcher knows of the run's inputs; written with the seed and the
    image size to run_manifest.json beside the checkpoints.
    """

    checkpoint_dir: Optional[str] = None
    records_root_dir: Optional[str] = None
    train_datasets: Sequence[str] = ()
    eval_datasets: Sequence[str] = ()
    summary_dir: Optional[str] = None
    manifest: Optional[Any] = None


class Trainer:
    """Episodic training, one episode per update, as the official `Trainer` configures it.

    Args:
      run: the `RunInputs`.
      options: the `TrainerOptions` (default: `trainer_options()`, the gin `Trainer.*`).
      strategy: the tf.distribute strategy (default: from `options.distribute`/`tpu` and
        TF_CONFIG, `distribute.make_strategy`).
      train_episodes_fn: `seed -> iterable of Episode` replaces the training records.
      eval_episodes_fn: `(split, seed) -> iterable of Episode` replaces the eval records.
      print_fn: where the run's lines go.
    """

    def __init__(self, run, options=None, strategy=None, train_episodes_fn=None,
                 eval_episodes_fn=None, print_fn=None):
        self.options = trainer_options() if options is None else options
        if self.options.data_config is None and train_episodes_fn is None:
            raise TrainerError("Trainer.data_config is unbound; bind "
                               "`Trainer.data_config = @DataConfig()`")
        self.run = run
        # Absolute: best_checkpoint.json must point at the checkpoint from any directory.
        self.checkpoint_dir = os.path.abspath(run.checkpoint_dir) if run.checkpoint_dir else None
        self.print = print_fn or (lambda message: print(message, flush=True))
        self.strategy = strategy or distribute_lib.make_strategy(
            distribute=self.options.distribute, tpu=self.options.tpu)
        self.chief = distribute_lib.is_chief(self.strategy)
        self.train_episodes_fn = train_episodes_fn
        self.updater = step_lib.Updater(
            self.strategy, self.options.learner_class, self.options.schedule,
            self.options.normalized_gradient_descent, self.options.image_size,
            seed=self.options.loop.seed)
        self.validation = validation_lib.Validation(
            run.records_root_dir, run.eval_datasets, self.options.validation,
            data_config=self.options.data_config, episodes_fn=eval_episodes_fn,
            benchmark=benchmark_versions.of_training(run.train_datasets))
        self.checkpointing = None if self.checkpoint_dir is None else (
            checkpointing_lib.Checkpointing(self.updater, self.checkpoint_dir,
                                            self.options.checkpoints, self.chief, self.print))
        self._train_specs = None

    @property
    def learner(self):
        return self.updater.learner

    @property
    def predict_fn(self):
        return self.updater.predict_fn

    # ------------------------------------------------------------------ data

    def check_data(self):
        """Loads the run's dataset specs and checks their files (fails before any graph is
        built)."""
        if self.train_episodes_fn is None:
            self._train_specs = list(sources_lib.load_sources(
                self.run.records_root_dir, self.run.train_datasets, Split.TRAIN,
                "benchmark.train_datasets").values())
        self.validation.check()

    def train_episodes(self, seed):
        """Training episodes (TRAIN split of the train datasets) from `seed`."""
        if self.train_episodes_fn is not None:
            return iter(self.train_episodes_fn(seed))
        if self._train_specs is None:
            self.check_data()
        return training_episodes(self._train_specs, self.options.train_episode_config,
                                 self.options.data_config, seed)

    # ------------------------------------------------------------------ the loop

    def _start(self):
        """Checks the outputs and the data, resumes or starts; returns (step, best, resumed)."""
        if self.checkpointing is None:
            raise TrainerError("no checkpoint directory: pass --train_checkpoint_dir")
        checkpointing_lib.check_writable(self.checkpoint_dir, "checkpoint directory")
        if self.run.summary_dir:
            checkpointing_lib.check_writable(self.run.summary_dir, "summary directory")
        self.check_data()
        resumed = self.checkpointing.restore_or_initialize()
        manifest = None if self.run.manifest is None else dict(
            self.run.manifest, seed=self.options.loop.seed, image_size=self.options.image_size)
        self.checkpointing.write_run_record(manifest)
        best = self.checkpointing.best() if resumed else None
        return int(self.updater.step.numpy()), best, resumed

    def _update(self, episodes, step):
        """One update on the next episode; returns its outputs and the episode's sizes."""
        try:
            episode = next(episodes)
        except StopIteration:
            raise TrainerError(f"the training episodes ran out at step {step}") from None
        out = self.updater.train_on_episode(episode)
        # Under loss scaling an overflow skips the update and halves the scale.
        if out.get("skipped") and np.isfinite(out["loss"]):
            self.print(f"[step {step + 1}] update skipped: gradients not finite at loss scale "
                       f"{out['loss_scale'] * 2:g}; the scale is now {out['loss_scale']:g}")
        elif not (np.isfinite(out["loss"]) and np.isfinite(out["grad_norm"])):
            raise TrainerError(
                f"non-finite loss {out['loss']} (gradient norm {out['grad_norm']}) at update "
                f"{step + 1}; training stopped. The last good checkpoint is "
                f"{self.checkpointing.latest}.")
        return out, step_lib.episode_stats(episode)

    def _validate(self, step, best, summaries):
        """Validates the model of `step`, summarises it; returns (result, improved)."""
        start = time.time()
        mean, ci95 = self.validation.validate(step, self.predict_fn, self.checkpoint_dir,
                                              self.chief, log=self.print)
        # One fixed query's attention, so correspondences can be watched as they form.
        figure = self.validation.attention_png(self.learner) if self.chief else None
        summaries.validation(step, mean, ci95, figure)
        improved = best is None or mean > best["valid_accuracy"]
        self.print(f"[step {step}] validation: {format_accuracy(mean, ci95)} over "
                   f"{self.validation.num_episodes} episodes per source "
                   f"({time.time() - start:.1f} s){' (best so far)' if improved else ''}")
        return (mean, ci95), improved

    def train(self):
        """Runs (or resumes) training to `num_updates`; returns the best validation record."""
        loop = self.options.loop
        step, best, resumed = self._start()
        summaries = summaries_lib.Summaries(self.run.summary_dir, loop.num_updates,
                                            self.chief, self.print)
        if not resumed:
            result, _ = self._validate(step, best, summaries)
            self.checkpointing.save(step)
            best = self.checkpointing.record_best(step, *result)
        summaries.start(step)
        episodes = None
        while step < loop.num_updates:
            if episodes is None or step % loop.checkpoint_every == 0:
                # One stream per checkpoint period, seeded by (seed, first step): a run resumed
                # from a checkpoint sees exactly the episodes of an uninterrupted run.
                episodes = self.train_episodes(derive_seed(loop.seed, step))
            out, stats = self._update(episodes, step)
            step += 1
            last = step == loop.num_updates
            if step % loop.log_every == 0 or last or step == summaries.start_step + 1:
                summaries.update(step, out, stats)
            validate = step % loop.validate_every == 0 or last
            save = step % loop.checkpoint_every == 0 or last
            improved = False
            if validate:
                result, improved = self._validate(step, best, summaries)
            if save:
                self.checkpointing.save(step)
            if improved:
                best = self.checkpointing.record_best(step, *result)
            if validate or save:
                summaries.resume()  # updates/s counts training time only
        summaries.flush()
        self.checkpointing.write_operative_config()
        return best

    def write_operative_config(self):
        """Writes gin's operative config beside the checkpoints (the chief only)."""
        if self.checkpointing is not None:
            self.checkpointing.write_operative_config()
