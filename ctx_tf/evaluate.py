"""Evaluates a trained learner on Meta-Dataset test (or validation) episodes.

    python -m ctx_tf.evaluate \
        --gin_config=gin/ctx.gin --checkpoint=best --train_checkpoint_dir=/tmp/ctx/train \
        --records_root_dir=/data/records --datasets=ilsvrc_2012,omniglot,aircraft \
        --split=test --num_episodes=600 --seed=0 --output_dir=/tmp/ctx/eval

`--benchmark=md_v1|md_v2` names the benchmark version (`ctx_tf.evaluation.benchmark_versions`):
without `--datasets` its test sources are evaluated (md_v1: ten, md_v2: eight). The default
version is the one the run trained for (its run manifest, else the gin configuration's
`benchmark.train_datasets`: `ilsvrc_2012_v2` is md_v2, `ilsvrc_2012` md_v1); a run on
neither evaluates its own eval datasets under md_v1. Sources the version holds out, or a
version other than the run's, are refused. Published rows are compared within their version
and the run's training setting only (ImageNet only, or all datasets: the run manifest's or the
gin configuration's `benchmark.train_datasets`); a run trained otherwise is not compared, and
results.md says so.

Per source: 600 episodes of its TEST classes (official variable way and shot, DAG sampling for
ilsvrc_2012*, bi-level for omniglot, uniform elsewhere, no SimCLR episodes, no
hierarchy-ignoring episodes), batch norm in evaluation mode, mean accuracy and
95% CI = 1.96 * std(ddof=0) / sqrt(n). Writes to --output_dir: results.json (with every
episode's way, shots, queries, accuracy), episodes.csv, results.md (leaderboard-layout table
beside the published CTX row), results.png (bar chart) and operative_config.gin.

With a seed, the same episodes are drawn every run, so two models can be compared on
identical episodes: `--compare_with=<other>/results.json` adds their paired difference. A
killed evaluation resumes from the journal in --output_dir when the same command runs again.
"""

from ctx_tf.cli import quiet_start

# First, so that `python -m` captures TensorFlow's start-up logs of the imports below.
quiet_start.begin_if_main(__name__)

import os

from absl import app
from absl import flags
import gin
import tensorflow as tf

from ctx_tf import checkpoints
from ctx_tf import cli
from ctx_tf import distribute as distribute_lib
from ctx_tf import files
from ctx_tf import learners
from ctx_tf.cli import flags as cli_flags
from ctx_tf.data import config as config_lib
from ctx_tf.data import dataset_spec as spec_lib
from ctx_tf.data import demo
from ctx_tf.data import sampling
from ctx_tf.errors import UserError
from ctx_tf.evaluation import benchmark_versions
from ctx_tf.evaluation import comparison
from ctx_tf.evaluation import evaluator as evaluator_lib
from ctx_tf.evaluation import leaderboard
from ctx_tf.evaluation import protocol
from ctx_tf.evaluation import results as results_lib
from ctx_tf.evaluation import sources as sources_lib
from ctx_tf.evaluation import stats

FLAGS = flags.FLAGS
cli_flags.define_shared_flags()

cli_flags.define_model_episode_flags()
flags.DEFINE_list("datasets", None, "Sources to evaluate, e.g. ilsvrc_2012,omniglot,aircraft "
                  "(default: the --benchmark version's test sources).")
flags.DEFINE_enum("benchmark", None, list(benchmark_versions.VERSIONS),
                  "Meta-Dataset version: md_v1 (ten test sources) or md_v2 (eight: no ILSVRC, "
                  "no VGG Flower). Default: the version the run trained for, else md_v1.")
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


class UsageError(UserError, ValueError):
    """Bad flags."""


def tf_exists(path):

    return tf.io.gfile.exists(path)


def _from_run_manifest(train_checkpoint_dir, given, log):
    """`(filled, manifest)`: the flags `given` (a mapping of run_evaluation's arguments) with
    the unset ones taken from the training run's run_manifest.json (explicit values win), and
    the manifest (None when the run has none)."""

    manifest = checkpoints.read_run_manifest(train_checkpoint_dir) if train_checkpoint_dir else None
    if manifest is None:
        return given, None
    filled = dict(given)
    if not filled["records_root_dir"]:
        root = manifest.get("records_root_dir")
        if manifest.get("demo_source") and not (root and tf_exists(root)):
            root = demo.ensure_demo_source(print_fn=log)  # the built-in demo regenerates
        filled["records_root_dir"] = root
    filled["image_size"] = filled["image_size"] or manifest.get("image_size")
    operative = os.path.join(str(train_checkpoint_dir), checkpoints.OPERATIVE_CONFIG)
    if not filled["gin_config"] and not tf_exists(operative):  # else run_evaluation takes it
        filled["gin_config"] = manifest.get("gin_config") or []
    if not filled["output_dir"]:
        filled["output_dir"] = os.path.join(str(train_checkpoint_dir), "evaluation",
                                            f"{filled['split']}_seed{filled['seed']}")
    taken = [name for name in given if given[name] != filled[name]]
    if taken:
        log(f"from {os.path.join(str(train_checkpoint_dir), checkpoints.RUN_MANIFEST)}: "
            + ", ".join(f"{name}={filled[name]}" for name in taken))
    return filled, manifest


def _bound(name, default=None):
    """The value gin binds to `name` in the parsed configuration, else `default`."""
    try:
        return gin.query_parameter(name)
    except ValueError:
        return default


def _names(value):
    return [n.strip() for n in value.split(",") if n.strip()] if isinstance(value, str) else []


def _run_sources(manifest, train_checkpoint_dir):
    """`(version trained for or None, where that was read, the run's own eval datasets)`, from
    the run manifest, else from the parsed gin configuration's `benchmark` bindings."""
    if manifest is not None:
        where = f"the training run {train_checkpoint_dir}"
        trained_for = manifest.get("benchmark") if "benchmark" in manifest else (
            benchmark_versions.of_training(manifest.get("train_datasets") or [], where))
        return trained_for, where, list(manifest.get("eval_datasets") or [])
    train = _bound("benchmark.train_datasets")
    where = f"the gin configuration (benchmark.train_datasets = {train!r})"
    return (benchmark_versions.of_training(_names(train), where), where,
            _names(_bound("benchmark.eval_datasets")))


def _trained_on(manifest):
    """The training datasets of the evaluated model (the run manifest's, else the gin
    configuration's `benchmark.train_datasets`), or None when neither says: they decide the
    leaderboard setting its results are compared in."""
    if manifest is not None and manifest.get("train_datasets"):
        return list(manifest["train_datasets"])
    return _names(_bound("benchmark.train_datasets")) or None


def resolve_benchmark(requested, datasets, manifest, train_checkpoint_dir):
    """`(BenchmarkVersion, sources, why those sources)`: the version evaluated (`requested`,
    else the run's, else md_v1) and the sources (`datasets`, else the version's test sources
    when a version was asked for or the run trained for one, else the run's own eval
    datasets, else md_v1's test sources). Raises `BenchmarkError` for a version other than
    the run's or a source the version holds out."""
    trained_for, where, own = _run_sources(manifest, train_checkpoint_dir)
    benchmark_versions.check_run(requested, trained_for, where)
    version = benchmark_versions.get(requested or trained_for or benchmark_versions.DEFAULT)
    if datasets:
        sources, why = list(datasets), "--datasets"
    elif requested or trained_for or not own:
        sources, why = list(version.test_sources), f"the {version.name} test sources"
    else:
        sources, why = own, "the run's eval datasets"
    benchmark_versions.check_evaluation(version, sources,
                                        "--datasets" if datasets else f"{why} ({where})")
    origin = ("--benchmark" if requested else f"the version {where} trained for" if trained_for
              else "the default")
    return version, sources, f"{version.title} ({version.name}: {origin}); sources: {why}"


def _evaluate_model(setup, prefix, info, output_dir, floor_only, model_name, gin_config,
                    gin_bindings, train_datasets, progress_every_seconds, log):
    """Builds the learner from `prefix` (none with `floor_only`) and evaluates it on `setup`,
    resuming from the journal in `output_dir`; returns the results (with the model section)
    and the `Evaluator`.

    Runs under the strategy of the run's `Trainer.distribute`: all visible GPUs (or the
    logical CPU devices a process configured), as training did; never multi-worker."""
    strategy = distribute_lib.make_strategy(distribute=bool(_bound("Trainer.distribute")),
                                            cluster=False)
    if strategy.num_replicas_in_sync > 1:
        log(f"strategy: {type(strategy).__name__} with {strategy.num_replicas_in_sync} "
            "replicas")
    evaluator = evaluator_lib.Evaluator(
        setup, output_dir, dict(floor_only=bool(floor_only), checkpoint=prefix,
                                checkpoint_step=info.get("step"),
                                gin_config=[str(c) for c in gin_config],
                                gin_bindings=list(gin_bindings)),
        log=log, progress_every_seconds=progress_every_seconds)
    learner = None
    with strategy.scope():
        if not floor_only:
            learner = learners.build_learner(training=False, image_size=setup.image_size)
            loaded = checkpoints.load_learner_weights(learner, prefix)
            if loaded.startswith("official"):
                log(loaded)
        results = evaluator.evaluate(learner, floor=True, floor_only=floor_only)
    results["model"] = evaluator_lib.model_section(
        model_name, learner, checkpoint=prefix, checkpoint_info=info, gin_config=gin_config,
        gin_bindings=gin_bindings, train_datasets=train_datasets, floor_only=floor_only)
    results["environment"] = evaluator_lib.environment_section()
    return results, evaluator


def _write_outputs(results, output_dir, published_rows, evaluator, log):
    """Writes the operative config and the results files (results.json last), removes the
    journal and prints the table; returns the results with their comparisons."""
    results = {k: results[k] for k in ("format", "model", "protocol", "sources", "comparison",
                                       "environment") if k in results}
    results = comparison.with_comparisons(results, published_rows)
    tf.io.gfile.makedirs(str(output_dir))
    files.atomic_write(os.path.join(str(output_dir), "operative_config.gin")
                       if "://" not in str(output_dir)
                       else f"{str(output_dir).rstrip('/')}/operative_config.gin",
                       gin.operative_config_str())
    # results.json last: what is there is complete.
    paths = evaluator.write(results, published=published_rows)
    log("")
    log(results_lib.results_markdown(results, published_rows).split("## Per source")[0])
    log("wrote " + ", ".join(paths.values()))
    return results


def run_evaluation(gin_config=(), gin_bindings=(), checkpoint=None, train_checkpoint_dir=None,
                   records_root_dir=None, datasets=None, split="test", num_episodes=600,
                   seed=0, output_dir=None, compare_with=None, published_rows=("CTX",),
                   model_name="ctx_tf", image_size=None, progress_every_seconds=10.0,
                   floor_only=False, benchmark=None, log=print):
    """Everything `python -m ctx_tf.evaluate` does; returns the results mapping.

    The arguments are the flags'. The global gin configuration is replaced by the parsed
    `gin_config` + `gin_bindings`. Raises `UsageError`, `EvaluationError`, `CheckpointError`,
    `ResultsError`, `LearnerError`, `BenchmarkError` or data errors, each naming the
    flag, file or variable at fault.
    """

    given, manifest = _from_run_manifest(train_checkpoint_dir, dict(
        records_root_dir=records_root_dir, image_size=image_size,
        gin_config=list(gin_config), output_dir=output_dir, split=split, seed=seed), log)
    records_root_dir, image_size, gin_config, output_dir = (
        given["records_root_dir"], given["image_size"], given["gin_config"],
        given["output_dir"])
    required = (("--records_root_dir", records_root_dir), ("--output_dir", output_dir)) + (
        () if floor_only else (("--checkpoint", checkpoint),))
    for name, value in required:
        if not value:
            raise UsageError(f"{name} is required (or --train_checkpoint_dir of a run with a "
                             f"{checkpoints.RUN_MANIFEST})")
    files.check_output_dir(output_dir, "--output_dir")
    if num_episodes < 1:
        raise UsageError(f"--num_episodes must be >= 1, got {num_episodes}")
    seed = None if seed is not None and seed < 0 else seed
    leaderboard.check_row_names(published_rows)  # fails now, not after an hour of evaluation
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
    cli.parse_gin(gin_config, gin_bindings)
    version, datasets, described = resolve_benchmark(benchmark, datasets, manifest,
                                                     train_checkpoint_dir)
    train_datasets = _trained_on(manifest)
    data_config = config_lib.DataConfig()
    image_size = image_size or data_config.image_height
    split_enum = spec_lib.as_split(split)

    log(f"benchmark: {described}")
    log(f"records: {records_root_dir}; sources: {', '.join(datasets)}; split: {split_enum.name}; "
        f"{num_episodes} episodes per source; seed: {seed}; image size: {image_size}")
    # Every source is checked before the model is built or any episode drawn.
    sources_lib.load_sources(records_root_dir, datasets, split_enum)
    if floor_only:
        prefix, info = None, {}
    else:
        prefix, info = checkpoints.resolve_checkpoint(checkpoint, train_checkpoint_dir)
        log(f"checkpoint: {prefix} (step {info.get('step')}, selected by "
            f"{info['selected_by']})")
        if info.get("note"):
            log(f"note: {info['note']}")
    log(f"output: {output_dir}")

    setup = protocol.EvaluationSetup(
        records_root=str(records_root_dir), sources=tuple(datasets), split=split_enum,
        num_episodes=num_episodes, seed=seed, image_size=image_size,
        shuffle_buffer_size=data_config.shuffle_buffer_size,
        read_buffer_size_bytes=data_config.read_buffer_size_bytes,
        num_prefetch=data_config.num_prefetch,
        episode_config=sampling.EpisodeDescriptionConfig(), benchmark=version.name)
    results, evaluator = _evaluate_model(
        setup, prefix, info, output_dir, floor_only=floor_only, model_name=model_name,
        gin_config=gin_config, gin_bindings=gin_bindings, train_datasets=train_datasets,
        progress_every_seconds=progress_every_seconds, log=log)
    if previous is not None:
        results["comparison"] = {
            "against": str(compare_with),
            "against_model": previous.get("model", {}).get("name"),
            "paired_difference": stats.paired_difference(results, previous),
        }
    return _write_outputs(results, output_dir, tuple(published_rows), evaluator, log)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    run_evaluation(
        gin_config=FLAGS.gin_config, gin_bindings=FLAGS.gin_bindings,
        checkpoint=FLAGS.checkpoint, train_checkpoint_dir=FLAGS.train_checkpoint_dir,
        records_root_dir=cli_flags.records_root(), datasets=FLAGS.datasets,
        split=FLAGS.split, num_episodes=FLAGS.num_episodes, seed=FLAGS.seed,
        output_dir=FLAGS.output_dir, compare_with=FLAGS.compare_with,
        published_rows=FLAGS.published_rows, model_name=FLAGS.model_name,
        image_size=FLAGS.image_size, progress_every_seconds=FLAGS.progress_every_seconds,
        floor_only=FLAGS.floor_only, benchmark=FLAGS.benchmark)


if __name__ == "__main__":
    cli.run("evaluate", main)
