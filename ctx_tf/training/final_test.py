"""The final test of `python -m ctx_tf.train`: the best checkpoint on TEST episodes.

It runs the evaluation protocol (as `python -m ctx_tf.evaluate`) with `final_test.seed` and
writes its files to `<train_checkpoint_dir>/final_test/` (`results.json` with every episode,
its raw-pixel floor and the seed, `episodes.csv`, `results.md`, `results.png`, and
`training_curves.png` drawn from the run's summaries), so that
`python -m ctx_tf.evaluate --checkpoint=best --train_checkpoint_dir=<run> --seed=<seed>
--num_episodes=<n>` reproduces every episode's accuracy.
"""

import os

import gin
import tensorflow as tf

import ctx_tf
from ctx_tf import checkpoints
from ctx_tf import files
from ctx_tf.evaluation import curves

FINAL_TEST_SUBDIR = "final_test"
TRAINING_CURVES_PNG = "training_curves.png"


@gin.configurable
def final_test(num_episodes=600, seed=5678, enabled=True):
    """The launcher's final TEST evaluation: number of episodes (600 officially; gin/demo.gin
    uses fewer), their protocol seed, and whether it runs at all."""
    return dict(num_episodes=num_episodes, seed=seed, enabled=enabled)


def run_final_test(trainer, best, num_episodes, seed, training_info=None, log=None):
    """Restores `best["checkpoint"]` into the trainer's learner, evaluates it and writes the
    results beside the checkpoints; returns the results mapping."""
    prefix = checkpoints.restore_learner(trainer.learner, best["checkpoint"])
    results = trainer.evaluate("test", num_episodes=num_episodes, seed=seed, floor=True,
                               log=log)
    results["model"] = {
        "name": type(trainer.learner).__name__,
        "learner": type(trainer.learner).__name__,
        "checkpoint": prefix,
        "checkpoint_info": dict(best, selected_by=checkpoints.BEST_CHECKPOINT_JSON),
        "gin_config": [os.path.join(trainer.checkpoint_dir, checkpoints.OPERATIVE_CONFIG)],
        "gin_bindings": [],
    }
    results["training"] = dict(training_info or {}, num_updates=trainer.num_updates)
    results["environment"] = {"tensorflow": tf.__version__, "ctx_tf": ctx_tf.__version__}
    output_dir = os.path.join(trainer.checkpoint_dir, FINAL_TEST_SUBDIR)
    trainer.validation.write(results, output_dir)
    if trainer.summary_dir and trainer.is_chief():
        files.atomic_write(os.path.join(output_dir, TRAINING_CURVES_PNG),
                           curves.training_curves_png(trainer.summary_dir))
    return results
