"""The options of a run: the official gin `Trainer.*` names configure them, checked."""

import dataclasses
import inspect
import re

import gin
import pytest

from ctx_tf.data.dataset_spec import Split
from ctx_tf.training import options
from ctx_tf.training import validation
from tests.conftest import REPO_ROOT

# The official meta_dataset `Trainer` parameters its gin configs bind (the launcher passes the
# others: datasets, folders, is_training, ...).
OFFICIAL = ("num_updates", "batch_size", "num_eval_episodes", "checkpoint_every",
            "validate_every", "log_every", "train_learner_class", "eval_learner_class",
            "checkpoint_to_restore", "learning_rate", "decay_learning_rate", "decay_every",
            "decay_rate", "normalized_gradient_descent", "experiment_name",
            "pretrained_source", "train_episode_config", "eval_episode_config", "data_config",
            "distribute", "enable_tf_optimizations")


pytestmark = pytest.mark.usefixtures("clean_gin")


class Learner:
    pass


class OtherLearner:
    pass


gin.external_configurable(Learner, "OptionsTestLearner")
gin.external_configurable(OtherLearner, "OptionsTestOther")


def test_every_official_and_shipped_trainer_binding_names_a_parameter():
    parameters = set(inspect.signature(options.trainer_options).parameters)
    assert set(OFFICIAL) <= parameters
    shipped = {name for path in (REPO_ROOT / "gin").rglob("*.gin")
               for name in re.findall(r"^Trainer\.(\w+)\s*=", path.read_text(), re.M)}
    assert shipped and shipped <= parameters, shipped - parameters


def test_the_trainer_bindings_become_the_options():
    gin.parse_config("""
        Trainer.train_learner_class = @OptionsTestLearner
        Trainer.num_updates = 7
        Trainer.learning_rate = 0.002
        Trainer.decay_learning_rate = True
        Trainer.decay_every = 3
        Trainer.decay_rate = 0.5
        Trainer.checkpoint_every = 4
        Trainer.num_eval_episodes = 9
        Trainer.eval_seed = 5
        Trainer.seed = 11
        Trainer.max_checkpoints_to_keep = 2
        Trainer.checkpoint_to_restore = '/x/ckpt-1'
        Trainer.validation_pipeline = 'multisource'
        Trainer.batch_size = 256  # accepted, ignored
    """)
    got = options.trainer_options()
    assert issubclass(got.learner_class, Learner)  # gin wraps the class it configures
    assert (got.loop.num_updates, got.loop.checkpoint_every, got.loop.seed) == (7, 4, 11)
    assert got.schedule.at(2) == 0.002 and got.schedule.at(3) == 0.001
    assert got.validation == options.ValidationOptions(9, 5, options.MULTISOURCE, None)
    assert got.checkpoints == options.CheckpointOptions("/x/ckpt-1", 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.loop.num_updates = 8


@pytest.mark.parametrize("binding, message", [
    ("Trainer.num_updates = -5", "Trainer.num_updates must be a positive integer, got -5"),
    ("Trainer.validate_every = 0", "Trainer.validate_every must be a positive integer"),
    ("Trainer.learning_rate = 0.0", "Trainer.learning_rate must be > 0"),
    ("Trainer.validation_pipeline = 'pooled'",
     "Trainer.validation_pipeline must be one of 'per_source', 'multisource', got 'pooled'"),
    ("Trainer.eval_learner_class = @OptionsTestOther", "must be the same class"),
])
def test_bad_values_name_their_binding(binding, message):
    gin.parse_config(["Trainer.train_learner_class = @OptionsTestLearner", binding])
    with pytest.raises(options.TrainerError, match=re.escape(message)):
        options.trainer_options()


def test_the_launchers_dry_run_wants_a_data_config():
    gin.parse_config("Trainer.train_learner_class = @OptionsTestLearner")
    with pytest.raises(options.TrainerError, match="Trainer.data_config is unbound"):
        options.check_configuration()


def test_the_multisource_option_applies_to_validation_only():
    for pipeline, multisource in ((options.PER_SOURCE, False), (options.MULTISOURCE, True)):
        v = validation.Validation("/records", ["a", "b"],
                                  options.ValidationOptions(pipeline=pipeline))
        assert v.setup("valid").multisource is multisource
        assert v.setup("valid").split == Split.VALID
        assert v.setup("test", num_episodes=5, seed=3).multisource is False
