"""Trains a learner on Meta-Dataset episodes, then evaluates it on test episodes.

    python -m ctx_tf.train --gin_config=gin/ctx_simclr.gin \\
        --records_root_dir=/data/records --train_checkpoint_dir=runs/ctx/ckpt \\
        --summary_dir=runs/ctx/summaries [--gin_bindings="Trainer.num_updates=1000"]

    python -m ctx_tf.train --gin_config=gin/demo.gin      # the built-in demo, no downloads

Flags as the official launcher: `--gin_config` and `--gin_bindings` (both repeatable, later
wins), `--records_root_dir`, `--train_checkpoint_dir`, `--summary_dir`. Datasets come from
`benchmark.train_datasets` / `benchmark.eval_datasets`. Before anything is built the gin
configuration is parsed (unknown names fail), the records of every dataset are located and
their specs loaded, and the output directories are checked for writing.

The demo (`benchmark.train_datasets = 'demo_glyphs'` without `--records_root_dir`) generates
its source into `$CTX_TF_CACHE/demo` (default `~/.cache/ctx_tf/demo`). Output directories
default to `runs/<name of the first gin file>/{checkpoints,summaries}`.

After training, the best-validated checkpoint is restored and `final_test.num_episodes` TEST
episodes (600 officially; gin/demo.gin uses fewer) of the single eval dataset are evaluated by
the evaluation protocol (`final_test.seed`); mean +- 95% CI is printed next to nearest-centroid
on raw pixels on the same episodes, and the results are written as `python -m ctx_tf.evaluate`
writes them, to `<train_checkpoint_dir>/final_test/` (results.json, episodes.csv, results.md,
results.png).
"""

import logging
import os
import sys
import time

from absl import app
from absl import flags

from ctx_tf import cli_flags

FLAGS = flags.FLAGS
cli_flags.define_shared_flags()
flags.DEFINE_string("summary_dir", None,
                    "TensorBoard summaries (default: runs/<config name>/summaries).")

REPO_GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gin")


class LaunchError(RuntimeError):
    """The run cannot start; the message names the flag, binding or file at fault."""


def _import_configurables():
    """Registers every gin configurable a config may name."""
    import ctx_tf.data.config  # noqa: F401
    import ctx_tf.data.pipeline  # noqa: F401
    import ctx_tf.data.sampling  # noqa: F401
    import ctx_tf.models.backbones  # noqa: F401
    import ctx_tf.models.batch_norm  # noqa: F401
    import ctx_tf.models.cross_transformer  # noqa: F401
    import ctx_tf.training.final_test  # noqa: F401
    import ctx_tf.training.loop  # noqa: F401
    try:
        import ctx_tf.learners  # noqa: F401
    except ImportError as e:
        raise LaunchError(f"the learners module ctx_tf.learners cannot be imported: {e}") from e


class _DropGinPathLogs(logging.Filter):
    def filter(self, record):
        return not record.pathname.endswith("resource_reader.py")


def parse_gin(configs, bindings):
    """Parses gin files and bindings; raises LaunchError naming the file/binding at fault."""
    import gin

    _import_configurables()
    if not configs:
        raise LaunchError("no --gin_config given (e.g. --gin_config=gin/demo.gin)")
    for path in configs:
        if not os.path.isfile(path):
            raise LaunchError(f"--gin_config={path}: no such file")
        gin.add_config_file_search_path(os.path.dirname(os.path.abspath(path)))
    gin.add_config_file_search_path(REPO_GIN_DIR)
    # gin logs an error for every search-path entry an include is not found in; only the
    # final failure matters (and it raises).
    quiet = _DropGinPathLogs()
    logging.getLogger().addFilter(quiet)
    try:
        gin.parse_config_files_and_bindings(configs, bindings)
    except Exception as e:  # gin raises ValueError, KeyError, ... with the location.
        raise LaunchError(f"bad gin configuration ({', '.join(configs)}; bindings "
                          f"{list(bindings)}): {type(e).__name__}: {e}") from e
    finally:
        logging.getLogger().removeFilter(quiet)


def _check_writable(directory, flag):
    import tempfile

    try:
        os.makedirs(directory, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=directory, prefix=".write_probe_").close()
    except OSError as e:
        raise LaunchError(f"--{flag}={directory} is not writable: {e}") from e


def check_records(records_root_dir, names, binding):
    """Loads the spec of every dataset in `names`; raises LaunchError if one is missing."""
    from ctx_tf.data import dataset_spec as spec_lib

    if not names:
        raise LaunchError(f"{binding} is empty; bind it to comma-separated dataset names")
    if not os.path.isdir(records_root_dir):
        raise LaunchError(f"--records_root_dir={records_root_dir} is not a directory")
    summaries = []
    for name in names:
        directory = os.path.join(records_root_dir, name)
        if not os.path.isdir(directory):
            raise LaunchError(f"dataset {name!r} ({binding}) has no records: {directory} is not "
                              f"a directory under --records_root_dir={records_root_dir}")
        try:
            spec = spec_lib.load_dataset_spec(directory)
        except (ValueError, OSError) as e:
            raise LaunchError(f"dataset {name!r} ({binding}): {e}") from e
        counts = []
        for split in (spec_lib.Split.TRAIN, spec_lib.Split.VALID, spec_lib.Split.TEST):
            try:
                counts.append(f"{split.name.lower()} {len(spec.get_classes(split))}")
            except Exception:  # noqa: BLE001 -- a summary only
                pass
        summaries.append(f"{name} ({', '.join(counts)} classes)" if counts else name)
    return summaries


def run(configs, bindings, records_root_dir=None, train_checkpoint_dir=None, summary_dir=None,
        print_fn=None):
    """The launcher's work; returns the test results dict. Raises LaunchError/TrainerError."""
    import gin

    from ctx_tf.data import demo
    from ctx_tf.training import episodes as episodes_lib
    from ctx_tf.training import final_test as final_test_lib
    from ctx_tf.training import loop

    say = print_fn or (lambda message: print(message, flush=True))
    parse_gin(configs, bindings)
    try:
        train_names, eval_names = episodes_lib.benchmark()
    except episodes_lib.DataError as e:
        raise LaunchError(str(e)) from e
    name = os.path.splitext(os.path.basename(configs[0]))[0]
    if records_root_dir is None:
        if train_names == [demo.DEMO_SOURCE_NAME] and eval_names == [demo.DEMO_SOURCE_NAME]:
            records_root_dir = demo.ensure_demo_source(print_fn=say)
        else:
            raise LaunchError("--records_root_dir is required (only the demo, "
                              f"benchmark.train_datasets='{demo.DEMO_SOURCE_NAME}', generates "
                              "its own records)")
    train_summary = check_records(records_root_dir, train_names, "benchmark.train_datasets")
    eval_summary = check_records(records_root_dir, eval_names, "benchmark.eval_datasets")
    test_config = final_test_lib.final_test()
    if test_config["enabled"] and len(eval_names) != 1:
        raise LaunchError(
            "the final test evaluation takes exactly one dataset; bind benchmark.eval_datasets "
            f"to one name (got {eval_names}) or set final_test.enabled = False")
    train_checkpoint_dir = train_checkpoint_dir or os.path.join("runs", name, "checkpoints")
    summary_dir = summary_dir or os.path.join("runs", name, "summaries")
    _check_writable(train_checkpoint_dir, "train_checkpoint_dir")
    _check_writable(summary_dir, "summary_dir")
    say(f"Records: {records_root_dir}")
    say(f"Training on: {', '.join(train_summary)}")
    say(f"Validating/testing on: {', '.join(eval_summary)}")
    say(f"Checkpoints: {os.path.abspath(train_checkpoint_dir)}")
    say(f"Summaries:   {os.path.abspath(summary_dir)}")

    start = time.time()
    trainer = loop.Trainer(
        records_root_dir=records_root_dir, train_dataset_list=train_names,
        eval_dataset_list=eval_names, checkpoint_dir=train_checkpoint_dir,
        summary_dir=summary_dir, print_fn=say)
    say(f"Strategy: {type(trainer.strategy).__name__} with "
        f"{trainer.strategy.num_replicas_in_sync} replica(s); learner "
        f"{type(trainer.learner).__name__}")
    best = trainer.train()
    train_seconds = time.time() - start
    say(f"Training done in {train_seconds:.0f} s. Best validation: "
        f"{100 * best['valid_accuracy']:.2f} +- {100 * best['valid_ci95']:.2f} % at step "
        f"{best['step']} ({best['checkpoint']})")
    if not test_config["enabled"]:
        return dict(best=best)

    start = time.time()
    results = final_test_lib.run_final_test(
        trainer, best, test_config["num_episodes"], test_config["seed"],
        training_info=dict(train_seconds=round(train_seconds, 1)))
    test_seconds = time.time() - start
    entry = results["sources"][eval_names[0]]
    say(f"Test ({eval_names[0]}, {entry['num_episodes']} episodes, seed {test_config['seed']}, "
        f"checkpoint of step {best['step']}, {test_seconds:.0f} s):")
    say(f"  {type(trainer.learner).__name__}: "
        f"{100 * entry['mean']:.2f} +- {100 * entry['ci95']:.2f} %")
    say(f"  nearest centroid on raw pixels: "
        f"{100 * entry['floor_mean']:.2f} +- {100 * entry['floor_ci95']:.2f} %")
    say(f"Results: {os.path.join(os.path.abspath(train_checkpoint_dir), final_test_lib.FINAL_TEST_SUBDIR)}")
    trainer.write_operative_config()
    del gin
    return results


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cli_flags.quiet_tensorflow_chatter()
    from ctx_tf.training.loop import TrainerError

    try:
        run(FLAGS.gin_config, FLAGS.gin_bindings, cli_flags.records_root(),
            FLAGS.train_checkpoint_dir, FLAGS.summary_dir)
    except (LaunchError, TrainerError) as e:
        print(f"ctx_tf.train: error: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    except ValueError as e:  # data errors (ReaderError, DatasetSpecError, ...) name the file.
        print(f"ctx_tf.train: error: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
