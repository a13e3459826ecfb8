"""The options of a training run: frozen dataclasses, configured through the official gin names.

`Trainer.num_updates`, `Trainer.learning_rate`, `Trainer.decay_every`, ... configure
`trainer_options`, registered with gin under the official name `Trainer`; it checks every value
and returns a `TrainerOptions`, which `ctx_tf.training.loop.Trainer` takes. Official parameters
(same meaning): num_updates, learning_rate, decay_learning_rate, decay_every, decay_rate,
normalized_gradient_descent, checkpoint_every, validate_every, log_every, num_eval_episodes,
checkpoint_to_restore, distribute, train_learner_class, eval_learner_class (must equal the
train class: one learner serves both), data_config, train_episode_config, eval_episode_config.
Accepted and ignored: batch_size, experiment_name, pretrained_source, enable_tf_optimizations.

Our additions: seed (initialization and training episodes; `None`: drawn at random), eval_seed
(the protocol seed of validation, the same every validation), max_checkpoints_to_keep, tpu (a
TPU name or address: TPUStrategy) and validation_pipeline (`"per_source"`: each validation
source's own episodes, their means averaged; `"multisource"`: the official validation, one
pipeline drawing every episode's source at random).
"""

import dataclasses
import os
from typing import Any, Optional

import gin

from ctx_tf.errors import UserError
from ctx_tf.training.schedule import LearningRateSchedule

PER_SOURCE = "per_source"
MULTISOURCE = "multisource"
VALIDATION_PIPELINES = (PER_SOURCE, MULTISOURCE)


class TrainerError(UserError, RuntimeError):
    """A training run cannot start or continue; the message names the step/file/binding."""


@dataclasses.dataclass(frozen=True)
class LoopOptions:
    """When the loop trains, validates, checkpoints and logs (in updates), and its seed."""

    num_updates: int = 75000
    checkpoint_every: int = 500
    validate_every: int = 500
    log_every: int = 100
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class ValidationOptions:
    """How many validation episodes per source, under which protocol seed, from which
    pipeline (`PER_SOURCE` or `MULTISOURCE`), with which episode config (None: the un-scoped
    gin `EpisodeDescriptionConfig`)."""

    num_episodes: int = 600
    seed: int = 1234
    pipeline: str = PER_SOURCE
    episode_config: Any = None


@dataclasses.dataclass(frozen=True)
class CheckpointOptions:
    """The checkpoint a run's backbone starts from ('' for none) and how many to keep."""

    checkpoint_to_restore: str = ""
    max_to_keep: int = 3


@dataclasses.dataclass(frozen=True)
class TrainerOptions:
    """Everything a `Trainer` is configured with."""

    learner_class: Any
    data_config: Any = None
    train_episode_config: Any = None
    schedule: LearningRateSchedule = LearningRateSchedule(1e-4)
    normalized_gradient_descent: bool = False
    loop: LoopOptions = LoopOptions()
    validation: ValidationOptions = ValidationOptions()
    checkpoints: CheckpointOptions = CheckpointOptions()
    distribute: bool = False
    tpu: Optional[str] = None

    @property
    def image_size(self):
        return getattr(self.data_config, "image_height", None)


def _positive(name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise TrainerError(f"Trainer.{name} must be a positive integer, got {value!r}")
    return value


def _learner_class(train_learner_class, eval_learner_class):
    if (eval_learner_class is not None and train_learner_class is not None
            and eval_learner_class is not train_learner_class):
        raise TrainerError(
            "Trainer.eval_learner_class must be the same class as "
            "Trainer.train_learner_class: ctx_tf uses one learner for training and "
            f"evaluation (got {train_learner_class!r} and {eval_learner_class!r})")
    learner_class = train_learner_class or eval_learner_class
    if learner_class is None:
        raise TrainerError("no learner configured: bind Trainer.train_learner_class, e.g. "
                           "`Trainer.train_learner_class = @CrossTransformerLearner`")
    return learner_class


@gin.configurable("Trainer")
def trainer_options(num_updates=75000, learning_rate=1e-4, decay_learning_rate=False,
                    decay_every=5000, decay_rate=0.5, normalized_gradient_descent=False,
                    checkpoint_every=500, validate_every=500, log_every=100,
                    num_eval_episodes=600, checkpoint_to_restore="", distribute=False,
                    train_learner_class=None, eval_learner_class=None, data_config=None,
                    train_episode_config=None, eval_episode_config=None, seed=0,
                    eval_seed=1234, max_checkpoints_to_keep=3, tpu=None,
                    validation_pipeline=PER_SOURCE, batch_size=None, experiment_name=None,
                    pretrained_source=None, enable_tf_optimizations=None):
    """The `TrainerOptions` of the gin `Trainer.*` bindings (module docstring); raises
    TrainerError naming the first bad value."""
    del batch_size, experiment_name, pretrained_source, enable_tf_optimizations
    _positive("num_updates", num_updates, low=0)
    for name, value in (("checkpoint_every", checkpoint_every),
                        ("validate_every", validate_every), ("log_every", log_every),
                        ("decay_every", decay_every), ("num_eval_episodes", num_eval_episodes),
                        ("max_checkpoints_to_keep", max_checkpoints_to_keep)):
        _positive(name, value)
    if not learning_rate > 0:
        raise TrainerError(f"Trainer.learning_rate must be > 0, got {learning_rate!r}")
    if decay_learning_rate and not 0 < decay_rate <= 1:
        raise TrainerError(f"Trainer.decay_rate must be in (0, 1], got {decay_rate!r}")
    if validation_pipeline not in VALIDATION_PIPELINES:
        raise TrainerError(f"Trainer.validation_pipeline must be one of "
                           f"{', '.join(map(repr, VALIDATION_PIPELINES))}, got "
                           f"{validation_pipeline!r}")
    seed = int.from_bytes(os.urandom(4), "little") if seed is None else int(seed)
    return TrainerOptions(
        learner_class=_learner_class(train_learner_class, eval_learner_class),
        data_config=data_config, train_episode_config=train_episode_config,
        schedule=LearningRateSchedule(learning_rate, decay_learning_rate, decay_every,
                                      decay_rate),
        normalized_gradient_descent=bool(normalized_gradient_descent),
        loop=LoopOptions(num_updates, checkpoint_every, validate_every, log_every, seed),
        validation=ValidationOptions(num_eval_episodes, int(eval_seed), validation_pipeline,
                                     eval_episode_config),
        checkpoints=CheckpointOptions(checkpoint_to_restore or "", max_checkpoints_to_keep),
        distribute=bool(distribute), tpu=tpu)


def check_configuration():
    """The options of the parsed gin configuration, checked, building nothing: the launcher's
    dry run before it creates any folder."""
    options = trainer_options()
    if options.data_config is None:
        raise TrainerError("Trainer.data_config is unbound; bind "
                           "`Trainer.data_config = @DataConfig()`")
    return options
