"""Evaluation cost of CTX on this machine, timed directly on episodes of the real sizes.

    python benchmarks/eval_episodes.py [--sources ilsvrc_2012 omniglot] [--p90]
        [--config resnet34_224] [--policy float32]

1. Episode sizes of the ten test sources from the official sampler (variable way and shot,
   DAG / bi-level / uniform) on the shipped dataset specs: mean and 90th percentile of the
   support (S) and query (Q) counts over `--num_descriptions` TEST descriptions per source.
2. For each selected source, one random-image episode of the mean size (and with `--p90` the
   90th-percentile size) run through the predict function of `ctx_tf.evaluate` (traced once,
   for the first, tiny episode; the traces are counted and printed): the time of its first
   call (what an evaluation pays: every episode has a new shape) and, alone, the backbone
   (support and query passes) and the head (projections, attention, distances) on features of
   that episode, each with its FLOPs, GFLOP/s and the fraction of the in-run matmul rate.
3. A small episode called twice shows what a new shape costs beyond the compute.
The in-run 2048^3 float32 matmul rate (`machine.py`: best of 3 after a warm-up) is measured
right before each row (its column, and the episode's fraction of it) and at the end; the
machine and the load average are printed.
No extrapolation: sources not selected are listed with their sizes only. The input pipeline
(JPEG decoding) runs in parallel in tf.data and is measured by the pipeline benchmark.
"""

import argparse
import os
import pathlib
import time

import numpy as np
import tensorflow as tf

from ctx_tf import compute
from ctx_tf import distribute as distribute_lib
from ctx_tf.data import dataset_spec as dataset_spec_lib
from ctx_tf.data import sampling
from ctx_tf.data.episode import Episode
from ctx_tf.evaluation import leaderboard
from ctx_tf.learners import CrossTransformerLearner, build_learner_variables
from ctx_tf.models import backbones

import machine  # this folder is the script's sys.path[0]

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_SPECS = REPO.parent / "shared" / "meta_dataset_specs"

CONFIGS = {
    "conv4_84": dict(image_size=84, backbone=lambda: backbones.four_layer_convnet,
                     label="CTX, four-layer convnet, 84 px"),
    "resnet34_224": dict(
        image_size=224,
        backbone=lambda: (lambda keep_spatial_dims=False: backbones.resnet34(
            max_stride=16, deeplab_alignment=False, keep_spatial_dims=keep_spatial_dims)),
        label="CTX, ResNet-34 (stride 16), 224 px"),
}


def source_episode_sizes(specs_dir, num_descriptions, seed=0):
    """`{source: (way, S, Q arrays)}` of official TEST episode descriptions."""
    sizes = {}
    config = sampling.EpisodeDescriptionConfig()
    for name in leaderboard.TEST_SOURCES:
        path = pathlib.Path(specs_dir) / f"{name}_dataset_spec.json"
        spec = dataset_spec_lib.load_dataset_spec(f"/unused/{name}", spec_file=str(path))
        use_dag, use_bilevel = dataset_spec_lib.use_ontologies(name)
        sampler = sampling.EpisodeDescriptionSampler(
            spec, dataset_spec_lib.Split.TEST, config, use_dag_hierarchy=use_dag,
            use_bilevel_hierarchy=use_bilevel, rng=seed)
        way, s, q = [], [], []
        for _ in range(num_descriptions):
            description = sampler.sample_episode_description()
            way.append(len(description))
            s.append(sum(d[1] for d in description))
            q.append(sum(d[2] for d in description))
        sizes[name] = tuple(np.array(x) for x in (way, s, q))
    return sizes


def episode_of(way, num_support, num_query, image_size, rng):
    """A random-image episode of `way` classes with S and Q images spread over them."""
    support_labels = np.arange(num_support) % way
    query_labels = np.arange(num_query) % way

    def images(n):
        return tf.constant(rng.uniform(-1, 1, size=(n, image_size, image_size, 3)), tf.float32)

    return Episode(images(num_support), tf.constant(support_labels, tf.int32),
                   tf.constant(support_labels, tf.int64), images(num_query),
                   tf.constant(query_labels, tf.int32), tf.constant(query_labels, tf.int64))


def seconds_of(fn, *args):
    start = time.perf_counter()
    tf.nest.map_structure(lambda x: x.numpy(), fn(*args))
    return time.perf_counter() - start


def backbone_flops_per_image(learner, image_size):
    """FLOPs of one image's backbone pass, counted by the TF profiler on its graph."""
    fn = tf.function(lambda x: learner.backbone(x, training=False)[0])
    graph = fn.get_concrete_function(
        tf.TensorSpec([1, image_size, image_size, 3], tf.float32)).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops


def head_flops(num_support, num_query, positions, channels, dim):
    """The head's matmul FLOPs: key/value projections, scores and attended values."""
    projections = 2 * (num_support + num_query) * positions * channels * 2 * dim
    attention = 2 * num_support * positions * num_query * positions * dim * 2
    return projections + attention


class Timer:
    """The learner's predict, backbone and head functions, each traced once for every shape."""

    def __init__(self, learner, image_size):
        self.learner = learner
        self.traces = []
        episode_logits = learner.episode_logits

        def counted(*args, **kwargs):
            self.traces.append(1)  # runs while tracing only
            return episode_logits(*args, **kwargs)

        learner.episode_logits = counted
        self.predict = distribute_lib.make_predict_fn(tf.distribute.get_strategy(), learner)
        image = tf.TensorSpec([None, image_size, image_size, 3], tf.float32)
        self.backbone = tf.function(
            lambda s, q: learner.embed_episode(_Images(s, q), training=False),
            input_signature=[image, image])
        features = learner.backbone(tf.zeros([1, image_size, image_size, 3]), training=False)[0]
        self.grid = tuple(features.shape[1:3])
        self.channels = int(features.shape[-1])
        feature = tf.TensorSpec([None, *features.shape[1:]], tf.float32)

        def head(support, labels, query):
            sk, sv = learner.head.project(support)
            qk, qv = learner.head.project(query)
            return learner.head.logits_from_projections(sk, sv, labels, qk, qv)

        self.head = tf.function(head, input_signature=[
            feature, tf.TensorSpec([None], tf.int32), feature])
        # Traced here, on one image each, so that the timings below never trace.
        one = tf.zeros([1, image_size, image_size, 3])
        seconds_of(self.backbone, one, one)
        seconds_of(self.head, features, tf.zeros([1], tf.int32), features)


class _Images:
    def __init__(self, support, query):
        self.support_images, self.query_images = support, query


def measure(timer, way, s, q, image_size, rng):
    matmul = machine.matmul_gflops()  # this row's moment: the load can change in a run
    episode = episode_of(way, s, q, image_size, rng)
    total = seconds_of(timer.predict, episode)
    backbone = seconds_of(timer.backbone, episode.support_images, episode.query_images)
    positions = timer.grid[0] * timer.grid[1]
    support = tf.random.normal([s, *timer.grid, timer.channels])
    query = tf.random.normal([q, *timer.grid, timer.channels])
    head = seconds_of(timer.head, support, episode.support_labels, query)
    backbone_flops = (s + q) * timer.flops_per_image
    flops = head_flops(s, q, positions, timer.channels, timer.learner.head.query_dim)
    return dict(total=total, backbone=backbone, head=head,
                backbone_rate=backbone_flops / backbone / 1e9, head_rate=flops / head / 1e9,
                total_rate=(backbone_flops + flops) / total / 1e9, matmul=matmul)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", nargs="+", default=["ilsvrc_2012", "omniglot"],
                        choices=list(leaderboard.TEST_SOURCES))
    parser.add_argument("--p90", action="store_true", help="also the 90th-percentile sizes")
    parser.add_argument("--config", default="resnet34_224", choices=list(CONFIGS))
    parser.add_argument("--policy", default="float32", choices=list(compute.POLICIES))
    parser.add_argument("--specs_dir", default=str(DEFAULT_SPECS))
    parser.add_argument("--num_descriptions", type=int, default=200)
    args = parser.parse_args()
    if not pathlib.Path(args.specs_dir, "ilsvrc_2012_dataset_spec.json").exists():
        raise SystemExit(f"no dataset specs in {args.specs_dir}; pass --specs_dir")
    rng = np.random.RandomState(0)
    config = CONFIGS[args.config]
    size = config["image_size"]
    print(f"{machine.describe()}; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; {config['label']}, {args.policy}")

    sizes = source_episode_sizes(args.specs_dir, args.num_descriptions)
    print(f"\nTEST episode sizes, official sampler, {args.num_descriptions} descriptions per "
          "source (mean / 90th percentile):")
    print("| source | way | S | Q | S+Q |")
    print("|---|---|---|---|---|")
    for name, (way, s, q) in sizes.items():
        cells = [f"{x.mean():.0f} / {np.percentile(x, 90):.0f}" for x in (way, s, q, s + q)]
        print(f"| {name} | " + " | ".join(cells) + " |")

    with compute.policy_scope(args.policy):
        learner = CrossTransformerLearner(embedding_fn=config["backbone"]())
    build_learner_variables(learner, size)
    timer = Timer(learner, size)
    timer.flops_per_image = backbone_flops_per_image(learner, size)
    # The one trace, on a tiny episode; then a small new shape twice (per-shape set-up cost).
    warm_up = seconds_of(timer.predict, episode_of(2, 2, 2, size, rng))
    small = episode_of(5, 25, 25, size, rng)
    new_shape, same_shape = seconds_of(timer.predict, small), seconds_of(timer.predict, small)
    matmul = machine.matmul_gflops()
    print(f"\nbackbone: {timer.flops_per_image / 1e9:.2f} GFLOP per image, grid "
          f"{timer.grid[0]}x{timer.grid[1]}x{timer.channels}; in-run matmul {matmul:.0f} GFLOP/s")
    print(f"first call (traces the predict function): {warm_up:.1f} s; a new shape, 25+25 "
          f"images: first call {new_shape:.2f} s, again {same_shape:.2f} s")

    print("\nOne episode timed directly (first call of its shape, as in an evaluation):")
    print("| source | size | way | S | Q | episode s | backbone s | head s | backbone GFLOP/s "
          "| head GFLOP/s | episode GFLOP/s | matmul GFLOP/s | of matmul |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.sources:
        way, s, q = sizes[name]
        points = [("mean", np.mean)] + ([("p90", lambda x: np.percentile(x, 90))]
                                        if args.p90 else [])
        for label, statistic in points:
            w, ns, nq = (int(round(statistic(x))) for x in (way, s, q))
            m = measure(timer, w, ns, nq, size, rng)
            print(f"| {name} | {label} | {w} | {ns} | {nq} | {m['total']:.1f} | "
                  f"{m['backbone']:.1f} | {m['head']:.1f} | {m['backbone_rate']:.0f} | "
                  f"{m['head_rate']:.0f} | {m['total_rate']:.0f} | {m['matmul']:.0f} | "
                  f"{m['total_rate'] / m['matmul']:.0%} |", flush=True)
    print(f"\npredict function traces: {len(timer.traces)}; in-run matmul at the end "
          f"{machine.matmul_gflops():.0f} GFLOP/s; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
