"""Shows where a trained CrossTransformer looks: one attention figure per query of an episode.

    python -m ctx_tf.visualize --checkpoint=runs/demo/checkpoints/best/ckpt-300
    python -m ctx_tf.visualize --checkpoint=best:runs/ctx/checkpoints --records_root_dir=/data \
        --dataset=aircraft --split=test --seed=0 --episode=3 --num_queries=4 --output_dir=DIR

The episode is the `--episode`-th of `--dataset` that `python -m ctx_tf.evaluate --seed=S
--split=...` draws (the evaluation protocol's seeding). For its first `--num_queries` queries
a PNG each, `query_<i>.png` in `--output_dir` (default `<checkpoint dir>/attention`): the
query with a fixed grid of marked positions and, for its true class and (when wrong) its
predicted class, the support images with each position's attention as a heatmap
(`ctx_tf.evaluation.attention_figure`).

The gin config defaults to the training run's operative_config.gin beside the checkpoint (in
its directory or the one above, for `best/ckpt-N`); the dataset to the config's single
`benchmark.eval_datasets`; the records of the demo source are generated when absent. An
official TF1 checkpoint (no operative config) needs `--gin_config` (e.g. gin/ctx.gin),
`--records_root_dir` and `--dataset`.
"""

from ctx_tf.cli import quiet_start

# First, so that `python -m` captures TensorFlow's start-up logs of the imports below.
quiet_start.begin_if_main(__name__)

import itertools
import os

from absl import flags

from ctx_tf import checkpoints
from ctx_tf import cli
from ctx_tf import files
from ctx_tf import learners
from ctx_tf.cli import flags as cli_flags
from ctx_tf.data import config as config_lib
from ctx_tf.data import dataset_spec as spec_lib
from ctx_tf.data import demo
from ctx_tf.data import sampling
from ctx_tf.data.reading.errors import ReaderError
from ctx_tf.errors import UserError
from ctx_tf.evaluation import attention_figure
from ctx_tf.evaluation import protocol
from ctx_tf.evaluation import sources as sources_lib
from ctx_tf.training import episodes as episodes_lib

FLAGS = flags.FLAGS
cli_flags.define_shared_flags()


cli_flags.define_model_episode_flags()
flags.DEFINE_string("dataset", None, "Source to draw the episode from (default: the config's "
                    "single benchmark.eval_datasets).")
flags.DEFINE_integer("episode", 0, "Which episode of --seed (0: the first).")
flags.DEFINE_integer("num_queries", 4, "Queries to draw (the episode's first ones).")
flags.DEFINE_integer("num_positions", 4, "Marked query positions (a fixed grid).")
flags.DEFINE_integer("max_shots", 5, "Support images shown per class.")


def _operative_config(prefix):
    """The training run's operative_config.gin beside checkpoint `prefix`, or None."""

    directory = os.path.dirname(os.path.abspath(prefix))
    for candidate in (directory, os.path.dirname(directory)):
        path = os.path.join(candidate, checkpoints.OPERATIVE_CONFIG)
        if os.path.isfile(path):
            return path
    return None


def _records_and_dataset(records_root_dir, dataset, log):
    """(records root, dataset name), defaults from gin's benchmark and the demo source."""

    if not dataset:
        try:
            _, eval_names = episodes_lib.benchmark()
        except episodes_lib.DataError as e:
            raise UserError(f"no --dataset and the gin config names none: {e}") from e
        if len(eval_names) != 1:
            raise UserError(f"--dataset is required (the config's benchmark.eval_datasets is "
                            f"{eval_names})")
        dataset = eval_names[0]
    if not records_root_dir:
        if dataset != demo.DEMO_SOURCE_NAME:
            raise UserError(f"--records_root_dir is required for dataset {dataset!r} (only the "
                            f"demo source, {demo.DEMO_SOURCE_NAME}, generates its records)")
        records_root_dir = demo.ensure_demo_source(print_fn=log)
    return records_root_dir, dataset


def run_visualize(checkpoint, gin_config=(), gin_bindings=(), records_root_dir=None,
                  dataset=None, split="test", seed=0, episode=0, num_queries=4,
                  num_positions=4, max_shots=5, output_dir=None, train_checkpoint_dir=None,
                  log=print):
    """Everything `python -m ctx_tf.visualize` does; returns the written PNG paths
    (`output_dir` default: `<checkpoint dir>/attention`)."""


    for name, value in (("--num_queries", num_queries), ("--num_positions", num_positions),
                        ("--max_shots", max_shots)):
        if value < 1:
            raise UserError(f"{name} must be >= 1, got {value}")
    if episode < 0:
        raise UserError(f"--episode must be >= 0, got {episode}")
    seed = None if seed is not None and seed < 0 else seed
    if not checkpoint:
        raise UserError("--checkpoint is required")
    try:
        prefix, info = checkpoints.resolve_checkpoint(checkpoint, train_checkpoint_dir)
    except checkpoints.CheckpointError as e:
        raise UserError(str(e)) from e
    if not gin_config:
        operative = _operative_config(prefix)
        if operative is None:
            raise UserError(f"--gin_config is required: no {checkpoints.OPERATIVE_CONFIG} beside "
                            f"{prefix} (an official checkpoint: e.g. --gin_config=gin/ctx.gin)")
        gin_config = [operative]
    cli.parse_gin(gin_config, gin_bindings)
    records_root_dir, dataset = _records_and_dataset(records_root_dir, dataset, log)
    split_enum = spec_lib.as_split(split)
    spec = sources_lib.load_sources(records_root_dir, [dataset], split_enum,
                                    "--dataset")[dataset]
    output_dir = output_dir or os.path.join(os.path.dirname(os.path.abspath(prefix)),
                                            "attention")
    data_config = config_lib.DataConfig()
    log(f"gin config: {', '.join(map(str, gin_config))}")
    log(f"checkpoint: {prefix} (step {info.get('step')}, selected by {info['selected_by']})")
    log(f"episode {episode} of {dataset} ({split_enum.name}, {len(spec.get_classes(split_enum))} "
        f"classes in {records_root_dir}), seed {seed}; output: {output_dir}")

    try:
        learner = learners.build_learner(training=False, image_size=data_config.image_height)
    except learners.LearnerError as e:
        raise UserError(str(e)) from e
    if not attention_figure.has_attention(learner):
        raise UserError(f"{type(learner).__name__} (from {', '.join(map(str, gin_config))}) has "
                        "no spatial attention to show; visualize needs a CrossTransformerLearner")
    try:
        loaded = checkpoints.load_learner_weights(learner, prefix)
    except (checkpoints.CheckpointError, ValueError) as e:
        raise UserError(str(e)) from e
    log(loaded)
    setup = protocol.EvaluationSetup(
        records_root=str(records_root_dir), sources=(dataset,), split=split_enum,
        num_episodes=episode + 1, seed=seed, image_size=data_config.image_height,
        shuffle_buffer_size=data_config.shuffle_buffer_size,
        read_buffer_size_bytes=data_config.read_buffer_size_bytes, num_prefetch=0,
        episode_config=sampling.EpisodeDescriptionConfig())
    try:
        element = next(itertools.islice(protocol.source_episodes(setup, spec), episode, None))
    except (ReaderError, spec_lib.DatasetSpecError) as e:
        raise UserError(str(e)) from e
    chosen = list(range(min(num_queries, int(element[0].query_labels.shape[0]))))
    os.makedirs(output_dir, exist_ok=True)
    paths = []
    for index, png, correct in attention_figure.episode_figures(
            learner, element[0], chosen, num_positions=num_positions, max_shots=max_shots):
        path = files.atomic_write(os.path.join(output_dir, f"query_{index}.png"), png)
        log(f"wrote {path} ({'correct' if correct else 'wrong'}, {len(png) // 1024} KB)")
        paths.append(path)
    return paths


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {argv[1:]}")
    run_visualize(FLAGS.checkpoint, FLAGS.gin_config, FLAGS.gin_bindings,
                  cli_flags.records_root(), FLAGS.dataset, FLAGS.split, FLAGS.seed,
                  FLAGS.episode, FLAGS.num_queries, FLAGS.num_positions, FLAGS.max_shots,
                  FLAGS.output_dir, FLAGS.train_checkpoint_dir)


if __name__ == "__main__":
    cli.run("visualize", main)
