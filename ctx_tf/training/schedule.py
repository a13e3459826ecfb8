"""The learning-rate schedule of a run (docs/protocol.md §7.4), defined once for the optimizer and the logs."""

import dataclasses

from ctx_tf.keras import keras


@dataclasses.dataclass(frozen=True)
class LearningRateSchedule:
    """Staircase exponential decay, `lr0 * decay_rate ** floor(step / decay_every)`, or a
    constant `lr0` without decay; the official `Trainer` parameters."""

    learning_rate: float
    decay_learning_rate: bool = False
    decay_every: int = 5000
    decay_rate: float = 0.5

    def __post_init__(self):
        for name, kind in (("learning_rate", float), ("decay_learning_rate", bool),
                           ("decay_every", int), ("decay_rate", float)):
            object.__setattr__(self, name, kind(getattr(self, name)))

    def at(self, step):
        """The rate of update `step` (counted from 0), as a Python float."""
        if not self.decay_learning_rate:
            return self.learning_rate
        return self.learning_rate * self.decay_rate ** (int(step) // self.decay_every)

    def for_optimizer(self):
        """What the Keras optimizer takes: a Keras schedule of the same decay, or the float."""
        if not self.decay_learning_rate:
            return self.learning_rate
        return keras.optimizers.schedules.ExponentialDecay(
            self.learning_rate, self.decay_every, self.decay_rate, staircase=True)
