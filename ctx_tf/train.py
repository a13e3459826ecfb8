"""Trains a learner on Meta-Dataset episodes, then evaluates it on test episodes.

    python -m ctx_tf.train --gin_config=gin/ctx_simclr.gin \\
        --records_root_dir=/data/records --train_checkpoint_dir=runs/ctx/ckpt \\
        --summary_dir=runs/ctx/summaries [--gin_bindings="Trainer.num_updates=1000"]

    python -m ctx_tf.train --gin_config=demo      # the built-in demo, no downloads

Flags as the official launcher: `--gin_config` (a path, or the name of a config shipped with
ctx_tf: `demo`, `ctx_simclr`, ...) and `--gin_bindings` (both repeatable, later wins),
`--records_root_dir`, `--train_checkpoint_dir`, `--summary_dir`. Datasets come from
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
the evaluation of `python -m ctx_tf.evaluate` (`final_test.seed`), with its progress lines and
its journal: a killed final test resumes when the same command runs again. Mean ± 95% CI is
printed next to nearest-centroid on raw pixels on the same episodes, and the results are
written to `<train_checkpoint_dir>/final_test/` (results.json, episodes.csv, results.md,
results.png).
"""

from ctx_tf.cli import quiet_start

# First, so that `python -m` captures TensorFlow's start-up logs of the imports below.
quiet_start.begin_if_main(__name__)

import os
import time

from absl import app
from absl import flags

from ctx_tf import checkpoints
from ctx_tf import cli
from ctx_tf import files
from ctx_tf.cli import flags as cli_flags
from ctx_tf.data import demo
from ctx_tf.data.dataset_spec import Split
from ctx_tf.errors import UserError
from ctx_tf.evaluation import benchmark_versions
from ctx_tf.evaluation import sources as sources_lib
from ctx_tf.progress import format_accuracy, format_duration
from ctx_tf.training import episodes as episodes_lib
from ctx_tf.training import final_test as final_test_lib
from ctx_tf.training import loop
from ctx_tf.training import options as options_lib

FLAGS = flags.FLAGS
cli_flags.define_shared_flags()
flags.DEFINE_string("summary_dir", None,
                    "TensorBoard summaries (default: runs/<config name>/summaries).")


class LaunchError(UserError, RuntimeError):
    """The run cannot start; the message names the flag, binding or file at fault."""


def _configuration(configs, bindings):
    """Parses the gin configuration and checks what the run will use; returns
    `(config files, train names, eval names, benchmark version, final test config)`."""
    if not configs:
        raise LaunchError("no --gin_config given (e.g. --gin_config=demo)")
    configs = cli.parse_gin(configs, bindings)
    train_names, eval_names = episodes_lib.benchmark()
    version = benchmark_versions.of_training(train_names)
    benchmark_versions.check_evaluation(version or benchmark_versions.DEFAULT, eval_names,
                                        "benchmark.eval_datasets")
    options_lib.check_configuration()
    test_config = final_test_lib.final_test()
    if test_config["enabled"] and len(eval_names) != 1:
        raise LaunchError(
            "the final test evaluation takes exactly one dataset; bind benchmark.eval_datasets "
            f"to one name (got {eval_names}) or set final_test.enabled = False and test with "
            "python -m ctx_tf.evaluate --checkpoint=best --train_checkpoint_dir=<this run>")
    if test_config["enabled"] and not test_config["num_episodes"] >= 1:
        raise LaunchError(f"final_test.num_episodes must be >= 1, got "
                          f"{test_config['num_episodes']!r} (or set final_test.enabled = False)")
    return configs, train_names, eval_names, version, test_config


def _records(records_root_dir, train_names, eval_names, test_config, say):
    """`(records root, train specs, eval specs)`, every split the run draws from checked; the
    demo source is generated when no records root is given."""
    if records_root_dir is None:
        if train_names != [demo.DEMO_SOURCE_NAME] or eval_names != [demo.DEMO_SOURCE_NAME]:
            raise LaunchError("--records_root_dir is required (only the demo, "
                              f"benchmark.train_datasets='{demo.DEMO_SOURCE_NAME}', generates "
                              "its own records)")
        records_root_dir = demo.ensure_demo_source(print_fn=say)
    train_specs = sources_lib.load_sources(records_root_dir, train_names, Split.TRAIN,
                                           "benchmark.train_datasets")
    eval_specs = sources_lib.load_sources(records_root_dir, eval_names, Split.VALID,
                                          "benchmark.eval_datasets")
    if test_config["enabled"]:
        sources_lib.load_sources(records_root_dir, eval_names, Split.TEST,
                                 "benchmark.eval_datasets")
    return records_root_dir, train_specs, eval_specs


def _report_final_test(results, best, test_config, seconds, learner_name, say):
    ((source, entry),) = results["sources"].items()
    say(f"Test ({source}, {entry['num_episodes']} episodes, seed {test_config['seed']}, "
        f"checkpoint of step {best['step']}, {format_duration(seconds)}):")
    say(f"  {learner_name}: {format_accuracy(entry['mean'], entry['ci95'])}")
    say(f"  nearest centroid on raw pixels: "
        f"{format_accuracy(entry['floor_mean'], entry['floor_ci95'])}")


def run(configs, bindings, records_root_dir=None, train_checkpoint_dir=None, summary_dir=None,
        print_fn=None):
    """The launcher's work; returns the test results dict. Raises UserError (LaunchError,
    SourceError, TrainerError, data errors) naming the flag, binding or file at fault."""
    say = print_fn or (lambda message: print(message, flush=True))
    # Everything is checked before anything is created: a failed start leaves no folder.
    configs, train_names, eval_names, version, test_config = _configuration(configs, bindings)
    name = os.path.splitext(os.path.basename(configs[0]))[0]
    train_checkpoint_dir = train_checkpoint_dir or os.path.join("runs", name, "checkpoints")
    summary_dir = summary_dir or os.path.join("runs", name, "summaries")
    files.check_output_dir(train_checkpoint_dir, "--train_checkpoint_dir")
    files.check_output_dir(summary_dir, "--summary_dir")
    demo_source = records_root_dir is None
    records_root_dir, train_specs, eval_specs = _records(records_root_dir, train_names,
                                                         eval_names, test_config, say)
    say(f"Records: {records_root_dir}")
    if version:
        say(f"Benchmark: {benchmark_versions.get(version).title} ({version})")
    say(f"Training on: {', '.join(sources_lib.describe(*i) for i in train_specs.items())}")
    say(f"Validating/testing on: "
        f"{', '.join(sources_lib.describe(*i) for i in eval_specs.items())}")
    say(f"Checkpoints: {os.path.abspath(train_checkpoint_dir)}")
    say(f"Summaries:   {os.path.abspath(summary_dir)}")
    manifest = dict(
        records_root_dir=os.path.abspath(records_root_dir), demo_source=demo_source,
        train_datasets=train_names, eval_datasets=eval_names, benchmark=version,
        gin_config=[os.path.abspath(path) for path in configs], gin_bindings=list(bindings),
        final_test=test_config)

    start = time.time()
    trainer = loop.Trainer(loop.RunInputs(
        checkpoint_dir=train_checkpoint_dir, records_root_dir=records_root_dir,
        train_datasets=train_names, eval_datasets=eval_names, summary_dir=summary_dir,
        manifest=manifest), print_fn=say)
    say(f"Strategy: {type(trainer.strategy).__name__} with "
        f"{trainer.strategy.num_replicas_in_sync} replica(s); learner "
        f"{type(trainer.learner).__name__}")
    best = trainer.train()
    train_seconds = time.time() - start
    say(f"Training done in {format_duration(train_seconds)}. Best validation: "
        f"{format_accuracy(best['valid_accuracy'], best['valid_ci95'])} at step "
        f"{best['step']} ({best['checkpoint']})")
    if not test_config["enabled"]:
        return dict(best=best)
    say(f"Final test: {test_config['num_episodes']} TEST episodes of {eval_names[0]} "
        f"(seed {test_config['seed']}), best checkpoint")
    start = time.time()
    results = final_test_lib.run_final_test(
        trainer, best, test_config["num_episodes"], test_config["seed"],
        training_info=dict(train_seconds=round(train_seconds, 1)))
    _report_final_test(results, best, test_config, time.time() - start,
                       type(trainer.learner).__name__, say)
    say(f"Results: {os.path.join(trainer.checkpoint_dir, checkpoints.FINAL_TEST_SUBDIR)}")
    trainer.write_operative_config()
    return results


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    run(FLAGS.gin_config, FLAGS.gin_bindings, cli_flags.records_root(),
        FLAGS.train_checkpoint_dir, FLAGS.summary_dir)


if __name__ == "__main__":
    cli.run("train", main)
