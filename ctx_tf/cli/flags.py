"""Command-line flags shared by the commands, and `--verbose`.

absl flags live in one process-wide registry, so the flags several programs take are defined
here, once, whichever module is imported first (tests import several commands).
"""

import os
import sys

from absl import flags

FLAGS = flags.FLAGS
VERBOSE_ENV = "CTX_TF_VERBOSE"
_TRUE = ("1", "true", "yes", "on")

if "verbose" not in FLAGS:
    flags.DEFINE_bool("verbose", False, "Show tracebacks of user errors and TensorFlow's "
                      f"start-up logs (or set {VERBOSE_ENV}=1).")


def verbose():
    """True with --verbose or CTX_TF_VERBOSE=1 (before flags are parsed: a bare --verbose)."""
    if os.environ.get(VERBOSE_ENV, "").strip().lower() in _TRUE:
        return True
    if FLAGS.is_parsed():
        return bool(FLAGS.verbose)
    return "--verbose" in sys.argv[1:]


def define_shared_flags():
    """Defines --gin_config, --gin_bindings, --records_root_dir, --train_checkpoint_dir."""
    if "gin_config" not in FLAGS:
        flags.DEFINE_multi_string(
            "gin_config", [], "Gin configuration file(s) (repeatable; later files win): a path, "
            "or the name of a config shipped with ctx_tf (e.g. ctx_simclr, demo).")
    if "gin_bindings" not in FLAGS:
        flags.DEFINE_multi_string(
            "gin_bindings", [], "Gin bindings (repeatable), e.g. 'Trainer.num_updates=10'.")
    if "records_root_dir" not in FLAGS:
        flags.DEFINE_string(
            "records_root_dir", None,
            "Folder holding one sub-folder of records per dataset (official layout).")
    if "records_root" not in FLAGS:
        # The official converter's name for the same folder.
        flags.DEFINE_string("records_root", None, "Same as --records_root_dir.")
    if "train_checkpoint_dir" not in FLAGS:
        flags.DEFINE_string(
            "train_checkpoint_dir", None,
            "Training run's checkpoints, best_checkpoint.json and operative_config.gin "
            "(ctx_tf.train default: runs/<config name>/checkpoints).")


def define_model_episode_flags():
    """Defines --checkpoint, --split, --seed and --output_dir, the flags of the commands that
    run a trained model on protocol episodes (evaluate, visualize), with one meaning."""
    if "checkpoint" not in FLAGS:
        flags.DEFINE_string(
            "checkpoint", None,
            "'best' (the checkpoint recorded in best_checkpoint.json of --train_checkpoint_dir), "
            "'best:<train dir>', a path to a best_checkpoint.json, a checkpoint directory (its "
            "latest checkpoint) or a checkpoint path prefix; ours or an official TF1 checkpoint.")
    if "split" not in FLAGS:
        flags.DEFINE_enum("split", "test", ["test", "valid"], "Classes to draw episodes from.")
    if "seed" not in FLAGS:
        flags.DEFINE_integer("seed", 0, "Episode seed (same seed: same episodes); -1: unseeded.")
    if "output_dir" not in FLAGS:
        flags.DEFINE_string("output_dir", None, "Where the outputs are written.")


def records_root():
    """--records_root_dir, or the official converter's --records_root."""
    return FLAGS.records_root_dir or FLAGS.records_root
