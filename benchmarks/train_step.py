"""Training-step throughput and peak memory of CTX on CPU, one and two logical devices.

    python benchmarks/train_step.py            # 5-way 5-shot 10-query episodes, 5 timed steps
    python benchmarks/train_step.py --quick    # 5-way 1-shot 2-query episodes, 2 timed steps
    python benchmarks/train_step.py --policies float32,mixed_bfloat16 --devices_list 1
    python benchmarks/train_step.py --jit --devices_list 1 --only four_layer_convnet  # XLA
    python benchmarks/train_step.py --records_root_dir=<records root with omniglot/> \
        --policies float32,mixed_bfloat16 --steps 30       # real updates, official episodes
    python benchmarks/train_step.py --records_root_dir=<records root with omniglot/> \
        --policies float32,mixed_bfloat16 --steps 30 \
        --official_python=<python> --official_path=<paths>  # ... and the official trainer

Each configuration runs in its own process (logical devices must be set before TensorFlow
starts; peak memory is the process's maximum resident set size, TensorFlow runtime
included). Configurations: CTX with the four-layer convnet at 84 px and with ResNet-34
(max_stride 16, no DeepLab alignment) at 224 px, under the default strategy (1 device) and
MirroredStrategy over two logical CPU devices (the episode split and gathered as in training),
under each Keras policy of `--policies` (gin `compute.policy`). Each process also times a
2048^3 float32 matmul right before its steps (the in-run rate). Prints a Markdown table.

With `--records_root_dir`, each process is instead a real training run's first updates on the
official episodes: Omniglot TRAIN records, the official variable-way/shot episode
configuration (up to 50 ways and 500 support images), 84 px, the official DataConfig, the
four-layer convnet with the CTX head, through the trainer's own episode pipeline and train
step (`Trainer.train_episodes`, `Trainer.updater.train_on_episode`). It reports the time from the
process start (interpreter and TensorFlow start-up included) to the end of the first update,
updates/s over the following `--steps` updates (each on a new episode, pipeline included) and
the peak resident memory. The episodes are seeded (`--episode_seed`). With
`--official_python`, a last row runs the unmodified official trainer on the same episodes
(its sampler seeded as this run's; `official_trainer.py` says how to set up its environment)
and the table ends with the ratios of updates/s and whether every update's episode had the
same way, support and query counts in both. Without it, the official figures the issue
quotes from the other CPU kind are printed (0.38 updates/s, 63-100 s, 6-8 GB).
"""

START = __import__("time").time()  # the child's own start, before TensorFlow is imported

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = [
    ("four_layer_convnet", 84),
    ("resnet34", 224),
]


OFFICIAL_EPISODES = """
include 'setups/data_config_common.gin'
include 'setups/trainer_config.gin'
include 'setups/variable_way_and_shot.gin'
include 'setups/crosstransformer_config.gin'
Trainer.data_config = @DataConfig()
Trainer.train_episode_config = @EpisodeDescriptionConfig()
Trainer.eval_episode_config = @EpisodeDescriptionConfig()
Learner.embedding_fn = @four_layer_convnet
Trainer.distribute = False
compute.policy = '{policy}'
"""


def official_child(args):
    """First updates of a real training run on official Omniglot episodes (module docstring)."""
    import numpy as np

    from ctx_tf import cli
    from ctx_tf.data import pipeline
    from ctx_tf.training import loop

    cli.parse_gin([], [OFFICIAL_EPISODES.format(policy=args.policy)])
    trainer = loop.Trainer(loop.RunInputs(records_root_dir=args.records_root_dir,
                                          train_datasets=["omniglot"],
                                          eval_datasets=["omniglot"]),
                           print_fn=lambda m: None)
    episodes = trainer.train_episodes(args.episode_seed)
    sizes = []  # (ways, support, query) of each update's episode, the first included

    def next_episode():
        episode = next(episodes)
        sizes.append((int(np.max(episode.support_labels)) + 1,
                      int(episode.support_labels.shape[0]), int(episode.query_labels.shape[0])))
        return episode

    out = trainer.updater.train_on_episode(next_episode())
    first = time.time() - START
    start = time.time()
    for _ in range(args.steps):
        out = trainer.updater.train_on_episode(next_episode())
    elapsed = time.time() - start
    assert np.isfinite(out["loss"])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    w, s, q = (float(np.mean(x)) for x in zip(*sizes[1:]))
    print("RESULT " + json.dumps(dict(updates_per_s=args.steps / elapsed, first_step_s=first,
                                      peak_mb=peak_mb, matmul_gflops=matmul_rate(),
                                      mean_support=s, mean_query=q, mean_way=w, sizes=sizes,
                                      sampler_seed=pipeline.sampler_seed(args.episode_seed, 0))))


def matmul_rate():
    """GFLOP/s of a 2048^3 float32 matmul (best of 3 after a warm-up), timed now."""
    import tensorflow as tf

    a = tf.random.normal([2048, 2048])
    matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, a)))
    matmul().numpy()
    best = float("inf")
    for _ in range(3):
        start = time.time()
        matmul().numpy()
        best = min(best, time.time() - start)
    return 2 * 2048 ** 3 / best / 1e9


def child(args):
    if args.records_root_dir:
        return official_child(args)
    import numpy as np
    import tensorflow as tf

    if args.devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(args.devices)])
    import gin

    from ctx_tf import learners
    from ctx_tf.training import loop
    from ctx_tf.data.episode import Episode

    gin.parse_config([
        f"compute.policy = '{args.policy}'",
        f"Learner.embedding_fn = @{args.backbone}",
        "resnet34.max_stride = 16",
        "resnet34.deeplab_alignment = False",
        "resnet34.weight_decay = 8.85787420909229e-05",
        "four_layer_convnet.weight_decay = 8.85787420909229e-05",
        "CrossTransformerLearner.tformer_weight_decay = 8.85787420909229e-05",
        "bn.use_ema = True",
    ] + ([  # XLA needs the dense head (the blocked head sizes its loops from the episode)
        "compute.jit_compile = True",
        "CrossTransformerLearner.rematerialize = False",
    ] if args.jit else []))
    rng = np.random.RandomState(0)

    def images(n):
        return tf.constant(rng.uniform(-1, 1, (n, args.size, args.size, 3)).astype(np.float32))

    s_labels = np.repeat(np.arange(args.way), args.shot).astype(np.int32)
    q_labels = np.repeat(np.arange(args.way), args.query).astype(np.int32)
    episode = Episode(images(len(s_labels)), tf.constant(s_labels),
                      tf.constant(s_labels.astype(np.int64)), images(len(q_labels)),
                      tf.constant(q_labels), tf.constant(q_labels.astype(np.int64)))
    strategy = (tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(args.devices)])
                if args.devices > 1 else tf.distribute.get_strategy())
    never = lambda *a: iter(())  # noqa: E731 -- episodes are fed directly
    t = loop.Trainer(loop.RunInputs(), loop.trainer_options(
        train_learner_class=learners.CrossTransformerLearner, normalized_gradient_descent=True,
        learning_rate=6e-4), strategy=strategy, train_episodes_fn=never,
        eval_episodes_fn=never, print_fn=lambda m: None)
    matmul_gflops = matmul_rate()
    start = time.time()
    t.updater.train_on_episode(episode)  # tracing + first step
    first = time.time() - start
    start = time.time()
    for _ in range(args.steps):
        out = t.updater.train_on_episode(episode)
    elapsed = time.time() - start
    assert np.isfinite(out["loss"])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("RESULT " + json.dumps(dict(updates_per_s=args.steps / elapsed, first_step_s=first,
                                      peak_mb=peak_mb, matmul_gflops=matmul_gflops)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny episodes, 2 timed steps")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backbone", default="four_layer_convnet")
    parser.add_argument("--size", type=int, default=84)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--way", type=int, default=5)
    parser.add_argument("--shot", type=int, default=5)
    parser.add_argument("--query", type=int, default=10)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--only", default=None, help="run one backbone (e.g. resnet34)")
    parser.add_argument("--policy", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--policies", default="float32",
                        help="comma-separated Keras policies, e.g. float32,mixed_bfloat16")
    parser.add_argument("--devices_list", default="1,2", help="comma-separated device counts")
    parser.add_argument("--jit", action="store_true",
                        help="XLA (gin compute.jit_compile) with the dense CTX head")
    parser.add_argument("--records_root_dir", default=None,
                        help="records root holding omniglot/: time the first updates of a real "
                             "run on the official episodes instead (see the module docstring)")
    parser.add_argument("--episode_seed", type=int, default=0,
                        help="with --records_root_dir: the seed of the training episodes")
    parser.add_argument("--official_python", default=None,
                        help="with --records_root_dir: also time the official trainer on the "
                             "same episodes, run by this Python (see official_trainer.py)")
    parser.add_argument("--official_path", default="",
                        help="PYTHONPATH of the official trainer's row: the meta-dataset "
                             "checkout and its simclr and task_adaptation checkouts")
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.records_root_dir:
        return official_episodes(args)
    if args.quick:
        args.shot, args.query, args.steps = 1, 2, 2
    print(f"episodes: {args.way}-way {args.shot}-shot {args.query}-query "
          f"({args.way * args.shot} support + {args.way * args.query} query images), "
          f"{args.steps} timed steps after one warm-up step{', XLA, dense head' if args.jit else ''}; CPU, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    for backbone, size in CONFIGS:
        if args.only and backbone != args.only:
            continue
        for devices in (int(d) for d in args.devices_list.split(",")):
            for policy in args.policies.split(","):
                cmd = [sys.executable, os.path.abspath(__file__), "--child",
                       f"--backbone={backbone}", f"--size={size}", f"--devices={devices}",
                       f"--way={args.way}", f"--shot={args.shot}", f"--query={args.query}",
                       f"--steps={args.steps}", f"--policy={policy}"] + (
                           ["--jit"] if args.jit else [])
                proc = subprocess.run(cmd, capture_output=True, text=True)
                lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
                head = (backbone, size, devices, policy)
                if proc.returncode != 0 or not lines:
                    rows.append(head + ("failed: " + proc.stderr.strip()[-300:],))
                    continue
                r = json.loads(lines[-1][len("RESULT "):])
                rows.append(head + (f"{r['updates_per_s']:.3f} | {r['first_step_s']:.1f} | "
                                    f"{r['peak_mb']:.0f} | {r['matmul_gflops']:.0f}",))
                print(f"  done: {backbone} {size}px {devices} device(s) {policy}", flush=True)
    print("\n| backbone | image px | devices | policy | updates/s | first step (s, incl. "
          "tracing) | peak RSS (MB) | in-run matmul GFLOP/s |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def run_child(args, *extra, official=False):
    """(result dict or None, stderr tail) of one child process (with `official`, the official
    trainer's, run by official_trainer.py under --official_python)."""
    if official:
        cmd = [args.official_python, os.path.join(HERE, "official_trainer.py"),
               f"--records_root_dir={args.records_root_dir}", f"--steps={args.steps}", *extra]
        env = dict(os.environ, PYTHONPATH=args.official_path)
    else:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", f"--steps={args.steps}",
               f"--episode_seed={args.episode_seed}", *extra]
        env = None
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return None, proc.stderr.strip()[-300:]
    return json.loads(lines[-1][len("RESULT "):]), ""


def official_episodes(args):
    print(f"official episodes: Omniglot TRAIN of {args.records_root_dir}, variable way and "
          f"shot, 84 px, four-layer convnet + CTX; first update, then {args.steps} updates; "
          f"CPU, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    print("\n| code | policy | updates/s | process start to first update (s) | peak RSS (MB) | "
          "mean way / support / query | in-run matmul GFLOP/s | load |")
    print("|---|---|---|---|---|---|---|---|")
    rows = [("ctx_tf", policy) for policy in args.policies.split(",")]
    if args.official_python:
        rows.append(("official trainer", "float32"))
    results, seed = {}, None
    for code, policy in rows:
        load = os.getloadavg()[0]
        if code == "ctx_tf":
            r, error = run_child(args, f"--records_root_dir={args.records_root_dir}",
                                 f"--policy={policy}")
        else:
            r, error = run_child(args, *([] if seed is None else [f"--sampler_seed={seed}"]),
                                 official=True)
        if r is None:
            print(f"| {code} | {policy} | failed: {error} |", flush=True)
            continue
        seed = r.get("sampler_seed", seed)
        results[code, policy] = r
        print(f"| {code} | {policy} | {r['updates_per_s']:.3f} | {r['first_step_s']:.1f} | "
              f"{r['peak_mb']:.0f} | {r['mean_way']:.1f} / {r['mean_support']:.0f} / "
              f"{r['mean_query']:.0f} | {r['matmul_gflops']:.0f} | {load:.1f} |", flush=True)
    official = results.pop(("official trainer", "float32"), None)
    if official is None:
        print("official trainer (the issue's figure, measured on the other CPU kind): 0.38 "
              "updates/s, 63-100 s to the first update, 6-8 GB peak")
        return
    for (_, policy), r in results.items():
        same = r["sizes"] == official["sizes"]
        print(f"ctx_tf {policy} / official trainer: "
              f"{r['updates_per_s'] / official['updates_per_s']:.2f}x the updates/s; "
              + ("the same episode sizes, update for update" if same else
                 "different episode sizes (the samplers did not draw the same episodes)"))


if __name__ == "__main__":
    main()
