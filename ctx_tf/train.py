"""Trains a learner on Meta-Dataset episodes, then evaluates it on test episodes.

    python -m ctx_tf.train --gin_config=gin/ctx_simclr.gin \\
        --records_root_dir=/data/records --train_checkpoint_dir=runs/ctx/ckpt \\
        --summary_dir=runs/ctx/summaries [--gin_bindings="Trainer.num_updates=1000"]

    python -m ctx_tf.train --gin_config=gin/demo.gin      # the built-in demo, no downloads

Flags as the official launcher: `--gin_config` and `--gin_bindings` (both repeatable, later
wins), `--records_root_dir`, `--train_checkpoint_dir`, `--summary_dir`. Datasets come from
`benchmark.train_datasets` / `benchmark.eval_datasets`. Before anything is built the gin
configuration is parsed (unknown names fail) and the Trainer's bound arguments checked, the
records of every dataset are located and their specs loaded, and the output locations are
checked; no folder is created until all of it passed. Beside the checkpoints the run writes
`run_manifest.json` (records root, sources, benchmark version, image size, gin files, seeds),
from which
`python -m ctx_tf.evaluate --checkpoint=best --train_checkpoint_dir=<dir>` takes its inputs.

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

from ctx_tf.cli import quiet_start

# First, so that `python -m` captures TensorFlow's start-up logs of the imports below.
quiet_start.begin_if_main(__name__)

import os
import time

from absl import app
from absl import flags

from ctx_tf import cli
from ctx_tf import files
from ctx_tf.cli import flags as cli_flags
from ctx_tf.data import dataset_spec as spec_lib
from ctx_tf.data import demo
from ctx_tf.errors import UserError
from ctx_tf.evaluation import benchmark_versions
from ctx_tf.training import episodes as episodes_lib
from ctx_tf.training import final_test as final_test_lib
from ctx_tf.training import loop

FLAGS = flags.FLAGS
cli_flags.define_shared_flags()
flags.DEFINE_string("summary_dir", None,
                    "TensorBoard summaries (default: runs/<config name>/summaries).")


class LaunchError(UserError, RuntimeError):
    """The run cannot start; the message names the flag, binding or file at fault."""


def check_records(records_root_dir, names, binding):
    """Loads the spec of every dataset in `names`; raises LaunchError if one is missing."""

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
    """The launcher's work; returns the test results dict. Raises UserError (LaunchError,
    TrainerError, data errors) naming the flag, binding or file at fault."""

    say = print_fn or (lambda message: print(message, flush=True))
    # Everything is checked before anything is created: a failed start leaves no folder.
    if not configs:
        raise LaunchError("no --gin_config given (e.g. --gin_config=gin/demo.gin)")
    cli.parse_gin(configs, bindings)
    train_names, eval_names = episodes_lib.benchmark()
    version = benchmark_versions.of_training(train_names)
    benchmark_versions.check_evaluation(version or benchmark_versions.DEFAULT, eval_names,
                                        "benchmark.eval_datasets")
    loop.check_configuration()
    test_config = final_test_lib.final_test()
    if test_config["enabled"] and len(eval_names) != 1:
        raise LaunchError(
            "the final test evaluation takes exactly one dataset; bind benchmark.eval_datasets "
            f"to one name (got {eval_names}) or set final_test.enabled = False and test with "
            "python -m ctx_tf.evaluate --checkpoint=best --train_checkpoint_dir=<this run>")
    if test_config["enabled"] and not test_config["num_episodes"] >= 1:
        raise LaunchError(f"final_test.num_episodes must be >= 1, got "
                          f"{test_config['num_episodes']!r} (or set final_test.enabled = False)")
    name = os.path.splitext(os.path.basename(configs[0]))[0]
    train_checkpoint_dir = train_checkpoint_dir or os.path.join("runs", name, "checkpoints")
    summary_dir = summary_dir or os.path.join("runs", name, "summaries")
    files.check_output_dir(train_checkpoint_dir, "--train_checkpoint_dir")
    files.check_output_dir(summary_dir, "--summary_dir")
    demo_source = records_root_dir is None
    if demo_source:
        if train_names == [demo.DEMO_SOURCE_NAME] and eval_names == [demo.DEMO_SOURCE_NAME]:
            records_root_dir = demo.ensure_demo_source(print_fn=say)
        else:
            raise LaunchError("--records_root_dir is required (only the demo, "
                              f"benchmark.train_datasets='{demo.DEMO_SOURCE_NAME}', generates "
                              "its own records)")
    train_summary = check_records(records_root_dir, train_names, "benchmark.train_datasets")
    eval_summary = check_records(records_root_dir, eval_names, "benchmark.eval_datasets")
    say(f"Records: {records_root_dir}")
    if version:
        say(f"Benchmark: {benchmark_versions.get(version).title} ({version})")
    say(f"Training on: {', '.join(train_summary)}")
    say(f"Validating/testing on: {', '.join(eval_summary)}")
    say(f"Checkpoints: {os.path.abspath(train_checkpoint_dir)}")
    say(f"Summaries:   {os.path.abspath(summary_dir)}")
    manifest = dict(
        records_root_dir=os.path.abspath(records_root_dir), demo_source=demo_source,
        train_datasets=train_names, eval_datasets=eval_names, benchmark=version,
        gin_config=[os.path.abspath(path) for path in configs], gin_bindings=list(bindings),
        final_test=test_config)

    start = time.time()
    trainer = loop.Trainer(
        records_root_dir=records_root_dir, train_dataset_list=train_names,
        eval_dataset_list=eval_names, checkpoint_dir=train_checkpoint_dir,
        summary_dir=summary_dir, print_fn=say, run_manifest=manifest)
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
    return results


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    run(FLAGS.gin_config, FLAGS.gin_bindings, cli_flags.records_root(),
        FLAGS.train_checkpoint_dir, FLAGS.summary_dir)


if __name__ == "__main__":
    cli.run("train", main)
