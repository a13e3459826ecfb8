"""Evaluates a trained learner on Meta-Dataset test (or validation) episodes.

    python -m ctx_tf.evaluate \
        --gin_config=gin/ctx.gin --checkpoint=best --train_checkpoint_dir=/tmp/ctx/train \
        --records_root_dir=/data/records --datasets=ilsvrc_2012,omniglot,aircraft \
        --split=test --num_episodes=600 --seed=0 --output_dir=/tmp/ctx/eval

Per source: 600 episodes of its TEST classes (official variable way and shot, DAG sampling for
ilsvrc_2012*, bi-level for omniglot, uniform elsewhere, no SimCLR episodes, no
hierarchy-ignoring episodes), batch norm in evaluation mode, mean accuracy and
95% CI = 1.96 * std(ddof=0) / sqrt(n). Writes to --output_dir: results.json (with every
episode's way, shots, queries, accuracy), episodes.csv, results.md (leaderboard-layout table
beside the published CTX row), results.png (bar chart) and operative_config.gin.

With a seed, the same episodes are drawn every run, so two models can be compared on
identical episodes: `--compare_with=<other>/results.json` adds their paired difference.
"""

import os
import sys

from absl import app
from absl import flags

from ctx_tf import cli_flags

FLAGS = flags.FLAGS
cli_flags.define_shared_flags()

cli_flags.define_model_episode_flags()
flags.DEFINE_list("datasets", None, "Sources to evaluate, e.g. ilsvrc_2012,omniglot,aircraft.")
flags.DEFINE_integer("num_episodes", 600, "Episodes per source (the protocol uses 600).")
flags.DEFINE_string("compare_with", None,
                    "A previous results.json (or its directory) evaluated with the same seed: "
                    "adds the paired per-episode difference to the results.")
flags.DEFINE_list("published_rows", ["CTX"],
                  "Published leaderboard rows shown beside ours (see "
                  "ctx_tf.evaluation.leaderboard.PUBLISHED), e.g. CTX,ProtoNet (large).")
flags.DEFINE_string("model_name", "ctx_tf", "Name of our row in the tables.")
flags.DEFINE_integer("image_size", None, "Image side; default DataConfig.image_height (gin).")
flags.DEFINE_float("progress_every_seconds", 10.0, "Seconds between progress lines.")
flags.DEFINE_bool("floor_only", False,
                  "No checkpoint: evaluate the raw-pixel nearest-centroid floor alone, on the "
                  "same episodes, and write the same files with the floor as the row.")


class UsageError(ValueError):
    """Bad flags."""


def _import_configurables():
    """Registers every gin configurable a model config may bind."""
    import ctx_tf.data.config  # noqa: F401  DataConfig
    import ctx_tf.data.pipeline  # noqa: F401  decoders (registered at import)
    import ctx_tf.data.sampling  # noqa: F401  EpisodeDescriptionConfig
    import ctx_tf.models.backbones  # noqa: F401  resnet34, four_layer_convnet
    import ctx_tf.models.batch_norm  # noqa: F401  bn
    import ctx_tf.models.cross_transformer  # noqa: F401  CrossTransformer
    import ctx_tf.training.final_test  # noqa: F401  final_test
    import ctx_tf.training.loop  # noqa: F401  Trainer
    import ctx_tf.data.simclr  # noqa: F401  SimCLR augmentation settings of training configs
    import ctx_tf.learners  # noqa: F401  CrossTransformerLearner, PrototypicalNetworkLearner


_REPO_GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gin")


def _parse_gin(gin_config, gin_bindings):
    """Parses the model's gin files (includes resolve beside them and in the repo's gin/).

    Replaces the global gin configuration (an evaluation run owns it).
    """
    import gin

    _import_configurables()
    gin.clear_config()
    for path in gin_config:
        if not tf_exists(path):
            raise UsageError(f"--gin_config={path}: no such file")
        gin.add_config_file_search_path(os.path.dirname(os.path.abspath(path)))
    gin.add_config_file_search_path(_REPO_GIN_DIR)
    try:
        gin.parse_config_files_and_bindings(list(gin_config), list(gin_bindings))
    except Exception as e:  # gin raises ValueError, KeyError, ... naming the binding
        raise UsageError(f"bad gin configuration ({', '.join(gin_config) or 'no files'}; "
                         f"bindings {list(gin_bindings)}): {type(e).__name__}: {e}") from e


def tf_exists(path):
    import tensorflow as tf

    return tf.io.gfile.exists(path)


def run_evaluation(gin_config=(), gin_bindings=(), checkpoint=None, train_checkpoint_dir=None,
                   records_root_dir=None, datasets=None, split="test", num_episodes=600,
                   seed=0, output_dir=None, compare_with=None, published_rows=("CTX",),
                   model_name="ctx_tf", image_size=None, progress_every_seconds=10.0,
                   floor_only=False, log=print):
    """Everything `python -m ctx_tf.evaluate` does; returns the results mapping.

    The arguments are the flags'. The global gin configuration is replaced by the parsed
    `gin_config` + `gin_bindings`. Raises `UsageError`, `EvaluationError`, `CheckpointError`,
    `ResultsError`, `LearnerError` or data errors, each naming the
    flag, file or variable at fault.
    """
    import gin

    from ctx_tf import checkpoints
    from ctx_tf import files
    from ctx_tf import learners
    from ctx_tf.data import config as config_lib
    from ctx_tf.data import sampling
    from ctx_tf.evaluation import journal as journal_lib
    from ctx_tf.evaluation.floor import FLOOR_NAME
    from ctx_tf.evaluation import leaderboard
    from ctx_tf.evaluation import progress as progress_lib
    from ctx_tf.evaluation import protocol
    from ctx_tf.evaluation import results as results_lib
    from ctx_tf.evaluation import stats

    required = (("--records_root_dir", records_root_dir), ("--datasets", datasets),
                ("--output_dir", output_dir)) + (() if floor_only else
                                                 (("--checkpoint", checkpoint),))
    for name, value in required:
        if not value:
            raise UsageError(f"{name} is required")
    if num_episodes < 1:
        raise UsageError(f"--num_episodes must be >= 1, got {num_episodes}")
    seed = None if seed is not None and seed < 0 else seed
    for name in published_rows:
        leaderboard.published_row(name)  # fails now, not after an hour of evaluation
    previous = results_lib.load_results(compare_with) if compare_with else None

    if not gin_config and train_checkpoint_dir:
        # The training run's own record of its configuration.
        operative = os.path.join(str(train_checkpoint_dir), checkpoints.OPERATIVE_CONFIG)
        if tf_exists(operative):
            gin_config = [operative]
            log(f"gin config: {operative} (the training run's operative config)")
    if not gin_config and not floor_only:
        raise UsageError("--gin_config is required (or --train_checkpoint_dir with an "
                         "operative_config.gin)")
    _parse_gin(gin_config, gin_bindings)
    data_config = config_lib.DataConfig()
    image_size = image_size or data_config.image_height
    split_enum = protocol.dataset_spec_lib.as_split(split)

    log(f"records: {records_root_dir}; sources: {', '.join(datasets)}; split: {split_enum.name}; "
        f"{num_episodes} episodes per source; seed: {seed}; image size: {image_size}")
    # Every source is checked before the model is built or any episode drawn.
    protocol.load_sources(records_root_dir, list(datasets), split_enum)
    if floor_only:
        learner, prefix, info = None, None, {}
    else:
        prefix, info = checkpoints.resolve_checkpoint(checkpoint, train_checkpoint_dir)
        log(f"checkpoint: {prefix} (step {info.get('step')}, selected by "
            f"{info['selected_by']})")
        if info.get("note"):
            log(f"note: {info['note']}")
    log(f"output: {output_dir}")

    if not floor_only:
        learner = learners.build_learner(training=False, image_size=image_size)
        loaded = checkpoints.load_learner_weights(learner, prefix)
        if loaded.startswith("official"):
            log(loaded)

    setup = protocol.EvaluationSetup(
        records_root=str(records_root_dir), sources=tuple(datasets), split=split_enum,
        num_episodes=num_episodes, seed=seed, image_size=image_size,
        shuffle_buffer_size=data_config.shuffle_buffer_size,
        read_buffer_size_bytes=data_config.read_buffer_size_bytes,
        num_prefetch=data_config.num_prefetch,
        episode_config=sampling.EpisodeDescriptionConfig())
    journal = None
    if "://" not in str(output_dir):  # appends are durable on local file systems only
        identity = dict(protocol.run_identity(setup), floor_only=bool(floor_only),
                        checkpoint=prefix, checkpoint_step=info.get("step"),
                        gin_config=[str(c) for c in gin_config],
                        gin_bindings=list(gin_bindings))
        journal = journal_lib.Journal(
            os.path.join(str(output_dir), journal_lib.JOURNAL_NAME), identity)
    progress = progress_lib.Progress(stream=sys.stdout, every_seconds=progress_every_seconds)
    results = protocol.evaluate(learner, setup, progress=progress, log=log, floor=True,
                                floor_only=floor_only, journal=journal)
    results["model"] = {
        "name": FLOOR_NAME if floor_only else model_name,
        "learner": None if floor_only else type(learner).__name__,
        "checkpoint": prefix,
        "checkpoint_info": info,
        "gin_config": [str(c) for c in gin_config],
        "gin_bindings": list(gin_bindings),
    }
    if floor_only:
        results["model"]["floor_only"] = True
    import tensorflow as tf

    import ctx_tf

    results["environment"] = {"tensorflow": tf.__version__, "ctx_tf": ctx_tf.__version__}
    if previous is not None:
        results["comparison"] = {
            "against": str(compare_with),
            "against_model": previous.get("model", {}).get("name"),
            "paired_difference": stats.paired_difference(results, previous),
        }
    results = {k: results[k] for k in ("format", "model", "protocol", "sources", "comparison",
                                       "environment") if k in results}
    results = results_lib.with_comparisons(results, tuple(published_rows))
    tf.io.gfile.makedirs(str(output_dir))
    files.atomic_write(os.path.join(str(output_dir), "operative_config.gin")
                             if "://" not in str(output_dir)
                             else f"{str(output_dir).rstrip('/')}/operative_config.gin",
                             gin.operative_config_str())
    # results.json last: what is there is complete.
    paths = results_lib.write_results(output_dir, results, published=tuple(published_rows))
    if journal is not None:
        journal.remove()  # results.json now holds every episode
    log("")
    log(results_lib.results_markdown(results, tuple(published_rows)).split("## Per source")[0])
    log("wrote " + ", ".join(paths.values()))
    return results


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cli_flags.quiet_tensorflow_chatter()
    from ctx_tf.checkpoints import CheckpointError
    from ctx_tf.data.dataset_spec import DatasetSpecError
    from ctx_tf.learners import LearnerError
    from ctx_tf.evaluation.protocol import EvaluationError
    from ctx_tf.data.reader import ReaderError
    from ctx_tf.evaluation.results import ResultsError
    from ctx_tf.evaluation.journal import JournalError

    try:
        run_evaluation(
            gin_config=FLAGS.gin_config, gin_bindings=FLAGS.gin_bindings,
            checkpoint=FLAGS.checkpoint, train_checkpoint_dir=FLAGS.train_checkpoint_dir,
            records_root_dir=cli_flags.records_root(), datasets=FLAGS.datasets,
            split=FLAGS.split, num_episodes=FLAGS.num_episodes, seed=FLAGS.seed,
            output_dir=FLAGS.output_dir, compare_with=FLAGS.compare_with,
            published_rows=FLAGS.published_rows, model_name=FLAGS.model_name,
            image_size=FLAGS.image_size, progress_every_seconds=FLAGS.progress_every_seconds,
            floor_only=FLAGS.floor_only)
    except (UsageError, EvaluationError, CheckpointError, ResultsError, DatasetSpecError,
            ReaderError, KeyError, LearnerError, JournalError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"ctx_tf.evaluate: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
