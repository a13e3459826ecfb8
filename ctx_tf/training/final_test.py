"""The final test of `python -m ctx_tf.train`: the best checkpoint on TEST episodes.

It is the evaluation of `python -m ctx_tf.evaluate`, all of it (`evaluation.evaluator`): the
protocol with `final_test.seed`, progress lines with an ETA, and a journal in
`<train_checkpoint_dir>/final_test/`, so that a killed final test resumes where it stopped when
the same command runs again. It writes there `results.json` (every episode, its raw-pixel floor
and the seed), `episodes.csv`, `results.md`, `results.png`, and `training_curves.png` drawn
from the run's summaries, so that `python -m ctx_tf.evaluate --checkpoint=best
--train_checkpoint_dir=<run> --seed=<seed> --num_episodes=<n>` reproduces every episode's
accuracy.
"""

import os

import gin

from ctx_tf import checkpoints
from ctx_tf import files
from ctx_tf.evaluation import curves
from ctx_tf.evaluation import evaluator as evaluator_lib

TRAINING_CURVES_PNG = "training_curves.png"


@gin.configurable
def final_test(num_episodes=600, seed=5678, enabled=True):
    """The launcher's final TEST evaluation: number of episodes (600 officially; gin/demo.gin
    uses fewer), their protocol seed, and whether it runs at all."""
    return dict(num_episodes=num_episodes, seed=seed, enabled=enabled)


def run_final_test(trainer, best, num_episodes, seed, training_info=None, log=None):
    """Restores `best["checkpoint"]` into the trainer's learner, evaluates it (resuming from
    the journal of a killed final test) and writes the results beside the checkpoints;
    returns the results mapping."""
    prefix = checkpoints.restore_learner(trainer.learner, best["checkpoint"])
    output_dir = os.path.join(trainer.checkpoint_dir, checkpoints.FINAL_TEST_SUBDIR)
    chief = trainer.chief
    evaluator = trainer.validation.evaluator(
        "test", output_dir, dict(checkpoint=prefix, checkpoint_step=best["step"]),
        num_episodes=num_episodes, seed=seed, log=log or trainer.print, journal=chief)
    results = evaluator.evaluate(predict_fn=trainer.predict_fn, floor=True,
                                 episodes_fn=trainer.validation.episodes_fn_for("test"))
    name = type(trainer.learner).__name__
    results["model"] = evaluator_lib.model_section(
        name, trainer.learner, checkpoint=prefix,
        checkpoint_info=dict(best, selected_by=checkpoints.BEST_CHECKPOINT_JSON),
        gin_config=[os.path.join(trainer.checkpoint_dir, checkpoints.OPERATIVE_CONFIG)],
        train_datasets=trainer.run.train_datasets or None)
    results["training"] = dict(training_info or {},
                               num_updates=trainer.options.loop.num_updates)
    results["environment"] = evaluator_lib.environment_section()
    if chief:
        evaluator.write(results)
        if trainer.run.summary_dir:
            files.atomic_write(os.path.join(output_dir, TRAINING_CURVES_PNG),
                               curves.training_curves_png(trainer.run.summary_dir))
    return results
