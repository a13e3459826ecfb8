"""The training loop: when to train, validate, checkpoint and summarise (docs/protocol.md §7).

`Trainer` is the gin-configured entry point with the official names (`Trainer.num_updates`,
`Trainer.learning_rate`, `Trainer.decay_every`, `Trainer.train_learner_class`, ...). Behind
it sit small objects, each with one job: the learning-rate schedule (`schedule`), the
replicated update (`step`), the training episodes (`episodes`), validation (the evaluation
protocol, `ctx_tf.evaluation.protocol`, the same code as the final test and
`python -m ctx_tf.evaluate`) and the checkpoint files (`ctx_tf.checkpoints`). The loop knows
no model class: the learner owns its forward pass.
"""

import inspect
import os
import tempfile
import time

import gin
import numpy as np
import tensorflow as tf

from ctx_tf import checkpoints
from ctx_tf import compute
from ctx_tf import distribute as distribute_lib
from ctx_tf import files
from ctx_tf import learners
from ctx_tf.errors import UserError
from ctx_tf.evaluation import benchmark_versions
from ctx_tf.progress import format_duration
from ctx_tf.keras import keras
from ctx_tf.seeds import derive_seed
from ctx_tf.training import step as step_lib
from ctx_tf.training import summaries
from ctx_tf.training import validation as validation_lib
from ctx_tf.training.episodes import load_specs, training_episodes
from ctx_tf.training.schedule import LearningRateSchedule


class TrainerError(UserError, RuntimeError):
    """A training run cannot start or continue; the message names the step/file/binding."""


def _positive(name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise TrainerError(f"Trainer.{name} must be a positive integer, got {value!r}")
    return value


def _check_settings(num_updates, learning_rate, decay_learning_rate, decay_every, decay_rate,
                    checkpoint_every, validate_every, log_every, num_eval_episodes,
                    train_learner_class, eval_learner_class, data_config, episodes_given):
    """Raises TrainerError naming the first bad Trainer argument; returns the learner class."""
    _positive("num_updates", num_updates, low=0)
    for name, value in (("checkpoint_every", checkpoint_every),
                        ("validate_every", validate_every), ("log_every", log_every),
                        ("decay_every", decay_every), ("num_eval_episodes", num_eval_episodes)):
        _positive(name, value)
    if not learning_rate > 0:
        raise TrainerError(f"Trainer.learning_rate must be > 0, got {learning_rate!r}")
    if decay_learning_rate and not 0 < decay_rate <= 1:
        raise TrainerError(f"Trainer.decay_rate must be in (0, 1], got {decay_rate!r}")
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
    if data_config is None and not episodes_given:
        raise TrainerError("Trainer.data_config is unbound; bind "
                           "`Trainer.data_config = @DataConfig()`")
    return learner_class


def check_configuration():
    """Checks the Trainer arguments bound in the parsed gin configuration, building nothing:
    the launcher's dry run before it creates any folder."""
    parameters = inspect.signature(Trainer.__init__).parameters
    settings = {name: parameter.default for name, parameter in parameters.items()
                if parameter.default is not inspect.Parameter.empty}
    settings.update(gin.get_bindings(Trainer))
    checked = inspect.signature(_check_settings).parameters
    _check_settings(**{name: settings[name] for name in checked if name in settings},
                    episodes_given=False)


@gin.configurable
class Trainer:
    """Episodic trainer: one episode per update, gin names as the official `Trainer`.

    Official parameters (same meaning): num_updates, learning_rate, decay_learning_rate,
    decay_every, decay_rate, normalized_gradient_descent, checkpoint_every, validate_every,
    log_every, num_eval_episodes, checkpoint_to_restore, distribute, train_learner_class,
    eval_learner_class (must equal the train class: one learner serves both), data_config,
    train_episode_config, eval_episode_config. Accepted and ignored: batch_size,
    experiment_name, pretrained_source, enable_tf_optimizations.

    Our additions: seed (initialization and training episodes; `None`: drawn at random),
    eval_seed (the protocol seed of validation, the same every validation),
    max_checkpoints_to_keep, tpu (a TPU name/address: TPUStrategy). The launcher's final test
    is configured by `final_test`.

    Launcher arguments: records_root_dir, train_dataset_list, eval_dataset_list,
    checkpoint_dir, summary_dir, run_manifest (what the launcher knows of the run's inputs;
    written with the seed and image size to run_manifest.json beside the checkpoints); tests may pass `strategy`, `train_episodes_fn(seed)` and
    `eval_episodes_fn(split, seed)` (iterables of `Episode`) instead of records.
    """

    def __init__(self, num_updates=75000, learning_rate=1e-4, decay_learning_rate=False,
                 decay_every=5000, decay_rate=0.5, normalized_gradient_descent=False,
                 checkpoint_every=500, validate_every=500, log_every=100,
                 num_eval_episodes=600, checkpoint_to_restore="", distribute=False,
                 train_learner_class=None, eval_learner_class=None, data_config=None,
                 train_episode_config=None, eval_episode_config=None, seed=0, eval_seed=1234,
                 max_checkpoints_to_keep=3, tpu=None, batch_size=None, experiment_name=None,
                 pretrained_source=None, enable_tf_optimizations=None,
                 records_root_dir=None, train_dataset_list=(), eval_dataset_list=(),
                 checkpoint_dir=None, summary_dir=None, strategy=None,
                 train_episodes_fn=None, eval_episodes_fn=None, print_fn=None,
                 run_manifest=None):
        del batch_size, experiment_name, pretrained_source, enable_tf_optimizations
        self.learner_class = _check_settings(
            num_updates=num_updates, learning_rate=learning_rate,
            decay_learning_rate=decay_learning_rate, decay_every=decay_every,
            decay_rate=decay_rate, checkpoint_every=checkpoint_every,
            validate_every=validate_every, log_every=log_every,
            num_eval_episodes=num_eval_episodes, train_learner_class=train_learner_class,
            eval_learner_class=eval_learner_class, data_config=data_config,
            episodes_given=train_episodes_fn is not None and eval_episodes_fn is not None)
        self.num_updates = num_updates
        self.checkpoint_every = checkpoint_every
        self.validate_every = validate_every
        self.log_every = log_every
        self.schedule = LearningRateSchedule(learning_rate, decay_learning_rate, decay_every,
                                             decay_rate)
        self.normalized_gradient_descent = bool(normalized_gradient_descent)
        self.checkpoint_to_restore = checkpoint_to_restore or ""
        self.data_config = data_config
        self.train_episode_config = train_episode_config
        self.seed = int(int.from_bytes(os.urandom(4), "little") if seed is None else seed)
        self.max_checkpoints_to_keep = max_checkpoints_to_keep
        self.records_root_dir = records_root_dir
        self.train_dataset_list = list(train_dataset_list)
        # Absolute: best_checkpoint.json must point at the checkpoint from any directory.
        self.checkpoint_dir = os.path.abspath(checkpoint_dir) if checkpoint_dir else None
        self.summary_dir = os.path.abspath(summary_dir) if summary_dir else None
        self.train_episodes_fn = train_episodes_fn
        self.run_manifest = run_manifest
        self.print = print_fn or (lambda message: print(message, flush=True))
        self.image_size = getattr(data_config, "image_height", None)
        self.strategy = strategy or distribute_lib.make_strategy(distribute=distribute, tpu=tpu)
        self.validation = validation_lib.Validation(
            records_root_dir=records_root_dir, sources=list(eval_dataset_list),
            num_episodes=num_eval_episodes,
            seed=int(eval_seed), data_config=data_config, episode_config=eval_episode_config,
            episodes_fn=eval_episodes_fn,
            benchmark=benchmark_versions.of_training(self.train_dataset_list))
        self._train_specs = None
        self._build()

    # ------------------------------------------------------------------ model and optimizer

    def learning_rate_at(self, step):
        return self.schedule.at(step)

    def _build(self):
        # Trainer.seed also fixes the initialization, so a run is reproducible end to end.
        keras.utils.set_random_seed(self.seed % (2 ** 31))
        with self.strategy.scope():
            self.learner = learners.build_learner(learner_class=self.learner_class)
            if self.image_size is not None:
                learners.build_learner_variables(self.learner, self.image_size)
            # Keras Adam with epsilon 1e-7, as the official distributed (CTX) path; loss
            # scaling when the learner computes in float16 (gin `compute.policy`).
            self.optimizer = compute.training_optimizer(keras.optimizers.Adam(
                learning_rate=self.schedule.for_optimizer(), epsilon=1e-7), self.learner)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        # `built`, not `variables`: some variables may exist before the first call.
        self._variables_built = self.learner.built
        if self._variables_built:
            with self.strategy.scope():
                self.optimizer.build(self.learner.trainable_variables)
        self.checkpoint = checkpoints.make_checkpoint(self.learner, self.optimizer, self.step)
        self._compiled = {}
        self.predict_fn = distribute_lib.make_predict_fn(self.strategy, self.learner)

    def _ensure_variables(self, episode):
        if not self._variables_built:
            with self.strategy.scope():
                self.learner(episode, training=False)
                self.optimizer.build(self.learner.trainable_variables)
            self._variables_built = True

    def _compiled_fn(self, name, episode):
        self._ensure_variables(episode)
        if name not in self._compiled:
            signature = distribute_lib.episode_signature(episode)
            self._compiled[name] = (
                step_lib.make_train_step(self.strategy, self.learner, self.optimizer, self.step,
                                         self.normalized_gradient_descent, signature)
                if name == "train" else
                step_lib.make_gradient_fn(self.strategy, self.learner, signature))
        return self._compiled[name]

    def episode_gradients(self, episode):
        """(loss, raw gradients of the trainable variables) of one episode, summed over
        replicas, without an update (batch-norm EMAs do move: a training-mode pass)."""
        out = self._compiled_fn("gradients", episode)(episode)
        return float(out[0]), [g.numpy() for g in out[1:]]

    def train_on_episode(self, episode):
        """One update on `episode`; returns floats loss, accuracy, grad_norm, learning_rate."""
        train_step = self._compiled_fn("train", episode)
        learning_rate = self.learning_rate_at(int(self.step.numpy()))
        result = {k: float(v) for k, v in train_step(episode).items()}
        result["learning_rate"] = learning_rate
        return result

    def evaluate_episode(self, episode):
        """(accuracy, loss) of the learner in inference mode on one episode."""
        self._ensure_variables(episode)
        logits = np.asarray(self.predict_fn(episode)[0])
        labels = np.asarray(episode.query_labels)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        regularization = float(tf.add_n(self.learner.losses)) if self.learner.losses else 0.0
        loss = float(-log_softmax[np.arange(len(labels)), labels].mean()) + regularization
        return float((logits.argmax(axis=1) == labels).mean()), loss

    # ------------------------------------------------------------------ data and evaluation

    def check_data(self):
        """Loads the dataset specs of the run (fails fast, before any graph is built)."""
        if self.train_episodes_fn is None:
            self._train_specs = load_specs(self.records_root_dir, self.train_dataset_list,
                                           "train")
        self.validation.check()

    def train_episodes(self, seed):
        """Training episodes (TRAIN split of the train datasets) from `seed`."""
        if self.train_episodes_fn is not None:
            return iter(self.train_episodes_fn(seed))
        if self._train_specs is None:
            self.check_data()
        return training_episodes(self._train_specs, self.train_episode_config,
                                 self.data_config, seed)

    def evaluate(self, split="valid", num_episodes=None, seed=None, floor=False, log=None):
        """The evaluation protocol's results mapping for `split` of the eval datasets."""
        return self.validation.run(self.predict_fn, split=split, num_episodes=num_episodes,
                                   seed=seed, floor=floor, log=log)

    # ------------------------------------------------------------------ checkpoints

    def _check_writable(self, directory, what):
        files.check_output_dir(directory, what)
        try:
            os.makedirs(directory, exist_ok=True)
            tempfile.NamedTemporaryFile(dir=directory, prefix=".write_probe_").close()
        except OSError as e:
            raise TrainerError(f"{what} {directory} is not writable: {e}") from e

    def _managers(self, directory=None):
        return checkpoints.make_managers(self.checkpoint, directory or self.checkpoint_dir,
                                         self.max_checkpoints_to_keep)

    def is_chief(self):
        """False only for the non-chief workers of a multi-worker run."""
        if not isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return True
        resolver = self.strategy.cluster_resolver
        task_type, task_id = resolver.task_type, resolver.task_id
        if task_type in (None, "chief"):
            return True
        return (task_type == "worker" and task_id == 0
                and "chief" not in resolver.cluster_spec().as_dict())

    def _restore_or_initialize(self, manager):
        latest = manager.latest_checkpoint
        if latest:
            status = self.checkpoint.restore(latest)
            try:
                status.assert_existing_objects_matched()
            except AssertionError as e:
                raise TrainerError(f"cannot resume from {latest}: {str(e)[:2000]}") from e
            self.print(f"Resumed from {latest} (step {int(self.step.numpy())}).")
            return True
        if self.checkpoint_to_restore:
            try:
                path = checkpoints.restore_backbone(self.learner, self.checkpoint_to_restore)
            except checkpoints.CheckpointError as e:
                raise TrainerError(f"Trainer.checkpoint_to_restore: {e}") from e
            self.print(f"Initialized the backbone from {path} (Trainer.checkpoint_to_restore).")
        return False

    def write_operative_config(self):
        if self.checkpoint_dir:
            files.atomic_write(os.path.join(self.checkpoint_dir, checkpoints.OPERATIVE_CONFIG),
                               gin.operative_config_str())

    # ------------------------------------------------------------------ the loop

    def train(self):
        """Runs (or resumes) training to `num_updates`; returns the best validation record."""
        if not self.checkpoint_dir:
            raise TrainerError("no checkpoint directory: pass --train_checkpoint_dir")
        self._check_writable(self.checkpoint_dir, "checkpoint directory")
        if self.summary_dir:
            self._check_writable(self.summary_dir, "summary directory")
        self.check_data()
        chief = self.is_chief()
        manager, best_manager = self._managers(self.checkpoint_dir)
        resumed = self._restore_or_initialize(manager)
        if not chief:
            # Other workers of a multi-worker run save into a private directory (every worker
            # takes part in saving, only the chief's files are kept) and write nothing else.
            manager, best_manager = self._managers(tempfile.mkdtemp(prefix="ctx_tf_worker_"))
        writer = (tf.summary.create_file_writer(self.summary_dir)
                  if self.summary_dir and chief else tf.summary.create_noop_writer())
        best = checkpoints.read_best_checkpoint(self.checkpoint_dir) if resumed else None
        step = int(self.step.numpy())
        if chief:
            self.write_operative_config()
            if self.run_manifest is not None:
                checkpoints.write_run_manifest(self.checkpoint_dir, dict(
                    self.run_manifest, seed=self.seed, image_size=self.image_size,
                    operative_config=checkpoints.OPERATIVE_CONFIG))

        def validate(step):
            start = time.time()
            results = self.evaluate("valid")
            mean, ci95 = validation_lib.overall(results)
            # One fixed query's attention, so correspondences can be watched as they form.
            figure = self.validation.attention_png(self.learner) if chief else None
            with writer.as_default(step=step):
                summaries.scalar("valid_acc/mean", mean)
                summaries.scalar("valid_acc/ci95", ci95)
                if figure is not None:
                    summaries.png_image("valid/attention", figure)
            if chief:
                self.validation.write(results, os.path.join(self.checkpoint_dir, "valid"))
            improved = best is None or mean > best["valid_accuracy"]
            self.print(f"[step {step}] validation: {100 * mean:.2f} +- {100 * ci95:.2f} % over "
                       f"{self.validation.num_episodes} episodes per source "
                       f"({time.time() - start:.1f} s){' (best so far)' if improved else ''}")
            return (mean, ci95), improved

        def record_best(step, result):
            path = best_manager.save(checkpoint_number=step)
            record = dict(step=int(step), valid_accuracy=result[0], valid_ci95=result[1],
                          checkpoint=path)
            if chief:
                checkpoints.write_best_checkpoint(self.checkpoint_dir, step, result[0],
                                                  result[1], path)
            return record

        if not resumed:
            result, _ = validate(step)
            manager.save(checkpoint_number=step)
            best = record_best(step, result)
        episodes = None
        start_time, start_step = time.time(), step
        window_time, window_step = start_time, step
        while step < self.num_updates:
            if episodes is None or step % self.checkpoint_every == 0:
                # One stream per checkpoint period, seeded by (seed, first step): a run resumed
                # from a checkpoint sees exactly the episodes of an uninterrupted run.
                episodes = self.train_episodes(derive_seed(self.seed, step))
            try:
                episode = next(episodes)
            except StopIteration:
                raise TrainerError(f"the training episodes ran out at step {step}")
            out = self.train_on_episode(episode)
            step += 1
            # Under loss scaling an overflow skips the update and halves the scale.
            skipped = bool(out.get("skipped"))
            if skipped and np.isfinite(out["loss"]):
                self.print(f"[step {step}] update skipped: gradients not finite at loss scale "
                           f"{out['loss_scale'] * 2:g}; the scale is now {out['loss_scale']:g}")
            elif not (np.isfinite(out["loss"]) and np.isfinite(out["grad_norm"])):
                raise TrainerError(
                    f"non-finite loss {out['loss']} (gradient norm {out['grad_norm']}) at update "
                    f"{step}; training stopped. The last good checkpoint is "
                    f"{manager.latest_checkpoint}.")
            if step % self.log_every == 0 or step == self.num_updates or step == start_step + 1:
                now = time.time()
                rate = (step - window_step) / max(now - window_time, 1e-9)
                overall = (step - start_step) / max(now - start_time, 1e-9)
                eta = (self.num_updates - step) / max(overall, 1e-9)
                self.print(summaries.log_update(writer, step, self.num_updates, out,
                                                step_lib.episode_stats(episode))
                           + f" | {rate:.2f} updates/s, ETA {format_duration(eta)}")
                window_time, window_step = now, step
            improved = False
            if step % self.validate_every == 0 or step == self.num_updates:
                result, improved = validate(step)
            if step % self.checkpoint_every == 0 or step == self.num_updates:
                manager.save(checkpoint_number=step)
            if improved:
                best = record_best(step, result)
            if step % self.validate_every == 0 or step % self.checkpoint_every == 0:
                window_time = time.time()  # updates/s counts training time only
        writer.flush()
        if chief:
            self.write_operative_config()
        return best
