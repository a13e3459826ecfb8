"""The checkpoint files of a training run: resume, save, the best checkpoint, the run's record.

Files (docs/protocol.md §7.6, `ctx_tf.checkpoints`): `ckpt-<step>` (the last
`max_to_keep`), `best/ckpt-<step>` with `best_checkpoint.json`, `operative_config.gin` and
`run_manifest.json`. Only the chief of a multi-worker run writes them; the other workers save
into a private folder (every worker takes part in saving) and write nothing else.
"""

import os
import tempfile

import gin

from ctx_tf import checkpoints
from ctx_tf import files
from ctx_tf.training.options import TrainerError


def check_writable(directory, what):
    """Creates `directory` if needed; raises TrainerError if it cannot be written."""
    files.check_output_dir(directory, what)
    try:
        os.makedirs(directory, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=directory, prefix=".write_probe_").close()
    except OSError as e:
        raise TrainerError(f"{what} {directory} is not writable: {e}") from e


class Checkpointing:
    """The checkpoints of one run in `directory` (absolute, so best_checkpoint.json points at
    the checkpoint from any folder).

    Args:
      updater: the run's `step.Updater` (learner, optimizer and step are saved).
      directory: the checkpoint folder.
      options: `CheckpointOptions` (checkpoint_to_restore, max_to_keep).
      chief: False for the non-chief workers of a multi-worker run.
      print_fn: where the resume line goes.
    """

    def __init__(self, updater, directory, options, chief=True, print_fn=print):
        self.updater = updater
        self.directory = os.path.abspath(directory)
        self.options = options
        self.chief = chief
        self.print = print_fn
        self.checkpoint = checkpoints.make_checkpoint(updater.learner, updater.optimizer,
                                                      updater.step)
        self.manager, self.best_manager = self._managers(self.directory)

    def _managers(self, directory):
        return checkpoints.make_managers(self.checkpoint, directory, self.options.max_to_keep)

    @property
    def latest(self):
        return self.manager.latest_checkpoint

    def restore_or_initialize(self):
        """Resumes from the latest checkpoint (True), else initializes the backbone from
        `checkpoint_to_restore` if set (False)."""
        latest = self.manager.latest_checkpoint
        if latest:
            status = self.checkpoint.restore(latest)
            try:
                status.assert_existing_objects_matched()
            except AssertionError as e:
                raise TrainerError(f"cannot resume from {latest}: {str(e)[:2000]}") from e
            self.print(f"Resumed from {latest} (step {int(self.updater.step.numpy())}).")
            resumed = True
        else:
            resumed = False
            if self.options.checkpoint_to_restore:
                try:
                    path = checkpoints.restore_backbone(self.updater.learner,
                                                        self.options.checkpoint_to_restore)
                except checkpoints.CheckpointError as e:
                    raise TrainerError(f"Trainer.checkpoint_to_restore: {e}") from e
                self.print(f"Initialized the backbone from {path} "
                           "(Trainer.checkpoint_to_restore).")
        if not self.chief:
            self.manager, self.best_manager = self._managers(
                tempfile.mkdtemp(prefix="ctx_tf_worker_"))
        return resumed

    def save(self, step):
        self.manager.save(checkpoint_number=step)

    def record_best(self, step, mean, ci95):
        """Saves the best checkpoint of `step` and its best_checkpoint.json; the record."""
        path = self.best_manager.save(checkpoint_number=step)
        if self.chief:
            checkpoints.write_best_checkpoint(self.directory, step, mean, ci95, path)
        return dict(step=int(step), valid_accuracy=mean, valid_ci95=ci95, checkpoint=path)

    def best(self):
        """The recorded best checkpoint of the run (None before the first validation)."""
        return checkpoints.read_best_checkpoint(self.directory)

    def write_run_record(self, manifest):
        """operative_config.gin, and run_manifest.json when the launcher gave a `manifest`
        (the chief only)."""
        if not self.chief:
            return
        self.write_operative_config()
        if manifest is not None:
            checkpoints.write_run_manifest(self.directory, dict(
                manifest, operative_config=checkpoints.OPERATIVE_CONFIG))

    def write_operative_config(self):
        if self.chief:
            files.atomic_write(os.path.join(self.directory, checkpoints.OPERATIVE_CONFIG),
                               gin.operative_config_str())
