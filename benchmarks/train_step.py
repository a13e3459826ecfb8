"""Training-step throughput and peak memory of CTX on CPU, one and two logical devices.

    python benchmarks/train_step.py            # 5-way 5-shot 10-query episodes, 5 timed steps
    python benchmarks/train_step.py --quick    # 5-way 1-shot 2-query episodes, 2 timed steps
    python benchmarks/train_step.py --policies float32,mixed_bfloat16 --devices_list 1
    python benchmarks/train_step.py --jit --devices_list 1 --only four_layer_convnet  # XLA

Each configuration runs in its own process (logical devices must be set before TensorFlow
starts; peak memory is the process's peak resident memory, `VmHWM`, TensorFlow runtime
included). Configurations: CTX with the four-layer convnet at 84 px and with ResNet-34
(max_stride 16, no DeepLab alignment) at 224 px, under the default strategy (1 device) and
MirroredStrategy over two logical CPU devices (the episode split and gathered as in training),
under each Keras policy of `--policies` (gin `compute.policy`), on one fixed random episode
fed to `Trainer.train_on_episode`. Each process also times a 2048^3 float32 matmul right
before its steps (the in-run rate, `machine.py`). Prints a Markdown table.

A real training run's start-up and first updates on the official episodes, beside the
official trainer, are `train_run.py`'s.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import machine  # this folder is the script's sys.path[0]

CONFIGS = [
    ("four_layer_convnet", 84),
    ("resnet34", 224),
]


def child(args):
    import numpy as np
    import tensorflow as tf

    if args.devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(args.devices)])
    import gin

    from ctx_tf import learners
    from ctx_tf.training import loop
    from ctx_tf.data.config import DataConfig
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
        learning_rate=6e-4, data_config=DataConfig(image_height=args.size)), strategy=strategy,
        train_episodes_fn=never, eval_episodes_fn=never, print_fn=lambda m: None)
    matmul_gflops = machine.matmul_gflops()
    start = time.time()
    t.updater.train_on_episode(episode)  # tracing + first step
    first = time.time() - start
    start = time.time()
    for _ in range(args.steps):
        out = t.updater.train_on_episode(episode)
    elapsed = time.time() - start
    assert np.isfinite(out["loss"])
    peak_mb = machine.Peak.peak_rss_bytes() / 2 ** 20
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
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.quick:
        args.shot, args.query, args.steps = 1, 2, 2
    print(f"episodes: {args.way}-way {args.shot}-shot {args.query}-query "
          f"({args.way * args.shot} support + {args.way * args.query} query images), "
          f"{args.steps} timed steps after one warm-up step"
          f"{', XLA, dense head' if args.jit else ''}; {machine.describe()}; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
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


if __name__ == "__main__":
    main()
