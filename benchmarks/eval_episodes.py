"""Evaluation speed of CTX on this machine, and the time of a full Meta-Dataset evaluation.

    python benchmarks/eval_episodes.py [--quick] [--configs conv4_84 resnet34_224]

For each model configuration (CTX with the four-layer convnet at 84 px; CTX with ResNet-34,
max_stride 16, no DeepLab alignment, at 224 px -- the leaderboard model), in evaluation mode
(`training=False`) through the same compiled predict function as `ctx_tf.evaluate`:

1. backbone throughput (images/s) on random images;
2. full episodes of several sizes timed end to end, and the model of one episode's time
   `t = overhead + image_cost * (S + Q) + pair_cost * S * Q` fitted to them (non-negative
   least squares);
3. episode sizes (S support, Q query images) of each of the ten test sources, from the official
   sampler (variable way and shot, DAG / bi-level / uniform) on the shipped dataset specs
   (`../shared/meta_dataset_specs`, or --specs_dir), and with them the expected seconds per
   episode and the time of 600 episodes per source.

The input pipeline (reading and decoding JPEGs) is not included: it runs in parallel with the
model in `tf.data` and is measured by the pipeline benchmarks.
"""

import argparse
import os
import pathlib
import time

import numpy as np
import tensorflow as tf

from ctx_tf.data import dataset_spec as dataset_spec_lib
from ctx_tf.data import sampling
from ctx_tf.data.episode import Episode
from ctx_tf.evaluation import leaderboard
from ctx_tf.evaluation import protocol
from ctx_tf.learners import CrossTransformerLearner
from ctx_tf.models import backbones

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


def episode_of(support_per_class, query_per_class, image_size, rng):
    """A random-image episode with the given shots and queries per class."""
    support_labels = np.repeat(np.arange(len(support_per_class)), support_per_class)
    query_labels = np.repeat(np.arange(len(query_per_class)), query_per_class)

    def images(n):
        return tf.constant(rng.uniform(-1, 1, size=(n, image_size, image_size, 3)), tf.float32)

    return Episode(images(support_labels.size), tf.constant(support_labels, tf.int32),
                   tf.constant(support_labels, tf.int64), images(query_labels.size),
                   tf.constant(query_labels, tf.int32), tf.constant(query_labels, tf.int64))


def timed(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def source_episode_sizes(specs_dir, num_descriptions, seed=0):
    """`{source: (S array, Q array)}` of official TEST episode descriptions."""
    sizes = {}
    config = sampling.EpisodeDescriptionConfig()
    for name in leaderboard.TEST_SOURCES:
        path = pathlib.Path(specs_dir) / f"{name}_dataset_spec.json"
        spec = dataset_spec_lib.load_dataset_spec(f"/unused/{name}", spec_file=str(path))
        use_dag, use_bilevel = dataset_spec_lib.use_ontologies(name)
        sampler = sampling.EpisodeDescriptionSampler(
            spec, dataset_spec_lib.Split.TEST, config, use_dag_hierarchy=use_dag,
            use_bilevel_hierarchy=use_bilevel, rng=seed)
        s, q = [], []
        for _ in range(num_descriptions):
            description = sampler.sample_episode_description()
            s.append(sum(d[1] for d in description))
            q.append(sum(d[2] for d in description))
        sizes[name] = (np.array(s), np.array(q))
    return sizes


def measure(config_name, quick, rng):
    config = CONFIGS[config_name]
    size = config["image_size"]
    learner = CrossTransformerLearner(embedding_fn=config["backbone"]())
    predict = protocol.make_predict_fn(learner)
    repeats = 1 if quick else 3

    # Backbone throughput (inference mode, the support pass).
    batch = 10 if quick and size > 100 else 50
    images = tf.constant(rng.uniform(-1, 1, size=(batch, size, size, 3)), tf.float32)
    backbone_fn = tf.function(lambda x: learner.backbone(x, training=False)[0])
    features = backbone_fn(images)
    backbone_s = timed(lambda: backbone_fn(images).numpy(), repeats)
    images_per_s = batch / backbone_s

    # Whole episodes end to end; the first two calls trace (variable shapes) and are dropped.
    for s, q in [(5 * [2], 5 * [2]), (5 * [3], 5 * [3])]:
        predict(episode_of(s, q, size, rng))
    # Each timed episode has a shape not seen before and is run once, as in an evaluation
    # (every episode has its own support and query sizes; kernels set up per shape count).
    checks = ([(5 * [4], 5 * [4]), (10 * [4], 10 * [3]), (10 * [6], 10 * [4]),
               (10 * [8], 10 * [6])] if quick
              else [(5 * [5], 5 * [5]), (10 * [5], 10 * [5]), (10 * [10], 10 * [8]),
                    (20 * [8], 20 * [8]), (25 * [10], 25 * [6]), (40 * [10], 40 * [10])])
    measured = []
    for s, q in checks:
        episode = episode_of(s, q, size, rng)
        seconds = timed(lambda: [x.numpy() for x in predict(episode)], 1)
        measured.append((sum(s), sum(q), seconds))

    overhead, image_cost, pair_cost = fit_cost_model(measured)
    grid = features.shape[1:]
    return dict(name=config_name, label=config["label"], image_size=size,
                grid=tuple(grid), images_per_s=images_per_s, image_cost=image_cost,
                pair_cost=pair_cost, overhead=overhead, measured=measured)


def fit_cost_model(measured):
    """Non-negative least squares of `t = overhead + image_cost * (S + Q) + pair_cost * S * Q`.

    The CrossTransformer attention grows with support x query positions, hence the S * Q term.
    Every subset of the three terms is fitted and the best fit with no negative coefficient
    kept (a negative cost is measurement noise on a busy machine).
    """
    design = np.array([[1.0, s + q, s * q] for s, q, _ in measured])
    times = np.array([t for _, _, t in measured])
    best, best_error = np.zeros(3), float(np.sum(times ** 2))
    for mask in range(1, 8):
        columns = [i for i in range(3) if mask >> i & 1]
        coefficients, *_ = np.linalg.lstsq(design[:, columns], times, rcond=None)
        if np.any(coefficients < 0):
            continue
        full = np.zeros(3)
        full[columns] = coefficients
        error = float(np.sum((design @ full - times) ** 2))
        if error < best_error - 1e-12:
            best, best_error = full, error
    return tuple(float(c) for c in best)


def expected_seconds(m, s, q):
    return m["overhead"] + (s + q) * m["image_cost"] + s * q * m["pair_cost"]


def format_duration(seconds):
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours >= 1 else f"{seconds / 60:.1f} min"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few, small timings (~minutes)")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--specs_dir", default=str(DEFAULT_SPECS))
    parser.add_argument("--num_descriptions", type=int, default=None,
                        help="episode descriptions sampled per source (default 200, quick 100)")
    args = parser.parse_args()
    if not pathlib.Path(args.specs_dir, "ilsvrc_2012_dataset_spec.json").exists():
        raise SystemExit(f"no dataset specs in {args.specs_dir}; pass --specs_dir")
    rng = np.random.RandomState(0)
    num_descriptions = args.num_descriptions or (100 if args.quick else 200)
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; {'quick' if args.quick else 'full'} run")
    sizes = source_episode_sizes(args.specs_dir, num_descriptions)
    print(f"\nTEST episode sizes from the official sampler ({num_descriptions} descriptions per "
          "source): mean support S, mean query Q, mean S*Q")
    print("| source | S | Q | S*Q |")
    print("|---|---|---|---|")
    for name, (s, q) in sizes.items():
        print(f"| {name} | {s.mean():.0f} | {q.mean():.0f} | {np.mean(s * q):.0f} |")

    results = [measure(name, args.quick, rng) for name in args.configs]
    print("\nModel cost (inference mode, CPU):")
    print("| model | grid | backbone alone, images/s | fitted s per image | fitted ms per "
          "S-Q image pair | fitted overhead s | episode (S, Q): measured s / fitted s |")
    print("|---|---|---|---|---|---|---|")
    for m in results:
        checks = "; ".join(f"({s}, {q}): {t:.2f} / {expected_seconds(m, s, q):.2f}"
                           for s, q, t in m["measured"])
        print(f"| {m['label']} | {m['grid'][0]}x{m['grid'][1]} | {m['images_per_s']:.1f} "
              f"| {m['image_cost']:.4f} | {1000 * m['pair_cost']:.4f} | {m['overhead']:.3f} "
              f"| {checks} |")

    print("\nExpected evaluation time, 600 TEST episodes per source (model only):")
    header = "| source | " + " | ".join(f"{m['name']} s/episode | {m['name']} 600 episodes"
                                         for m in results) + " |"
    print(header)
    print("|" + "---|" * (1 + 2 * len(results)))
    totals = [0.0] * len(results)
    for name, (s, q) in sizes.items():
        cells = []
        for i, m in enumerate(results):
            per_episode = float(np.mean(expected_seconds(m, s, q)))
            totals[i] += 600 * per_episode
            cells += [f"{per_episode:.3g} ({1 / per_episode:.3g} episodes/s)",
                      format_duration(600 * per_episode)]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("| **all 10 sources** | " + " | ".join(f" | **{format_duration(t)}**"
                                                  for t in totals).lstrip(" ") + " |")


if __name__ == "__main__":
    main()
