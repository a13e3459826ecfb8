"""A real training run's start-up and first updates: ctx_tf beside the official trainer.

    python benchmarks/train_run.py --records_root_dir=<records root with omniglot/> \
        [--policies float32,mixed_bfloat16] [--steps 30] [--rounds 3] [--episode_seed 0] \
        [--official_python=<python> --official_path=<paths>] \
        [--ctx_tf_python_215=<python of a venv with ctx_tf on tensorflow==2.15.1>]

Rows, each run in its own process: ctx_tf under each Keras policy of `--policies` (gin
`compute.policy`) with this Python; the same with `--ctx_tf_python_215` (ctx_tf installed in
an environment with `tensorflow==2.15.1` and `tf-keras==2.15.1`, the official code's
TensorFlow); and with `--official_python`, the unmodified official trainer
(`official_trainer.py`, which says how to set up its environment; float32, its only policy).

Both codes run their own launcher's training loop in the child process: ctx_tf the work of
`python -m ctx_tf.train` (`ctx_tf.train.run`, the final test off), the official trainer its
`train.py` main. Configured alike: Omniglot TRAIN episodes of the official variable-way/shot
configuration (up to 50 ways and 500 support images), 84 px, the official DataConfig, the
four-layer convnet with the CTX head, one device, `Trainer.num_eval_episodes = 1` (both loops
validate before the first update), checkpoints at step 0 only, an update log line each
update. Each code thus does its own step-0 work before the first update: both validate one
episode and save a checkpoint; ctx_tf also writes its best-checkpoint copy, run manifest,
operative config and validation results, and TensorBoard scalars at every update (the
official summaries are off: they would rerun its train and valid graphs at every log line).
The episodes are seeded (`--episode_seed`: ctx_tf's `Trainer.seed`); the official TRAIN
sampler draws from the RandomState seed ctx_tf's pipeline gives its own sampler, and the
table says whether every update's episode had the same way, support and query counts.

Per row: the time from the process start (interpreter and TensorFlow start-up included) to
the log line of update 1, updates/s between the log lines of update 1 and update 1 + `--steps`
(each update on a new episode, pipeline included), the process's peak resident memory
(`VmHWM`), the in-run float32 matmul rate after the updates, the row's TensorFlow version.
`--rounds` interleaved rounds (`rounds.py`); ratios are per round, with their median.
"""

START = __import__("time").time()  # the child's own start, before TensorFlow is imported

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import machine  # this folder is the script's sys.path[0]
import rounds as rounds_lib

HERE = os.path.dirname(os.path.abspath(__file__))
GIN = """
include 'setups/data_config_common.gin'
include 'setups/trainer_config.gin'
include 'setups/variable_way_and_shot.gin'
include 'setups/crosstransformer_config.gin'
benchmark.train_datasets = 'omniglot'
benchmark.eval_datasets = 'omniglot'
Trainer.data_config = @DataConfig()
Trainer.train_episode_config = @train/EpisodeDescriptionConfig()
Trainer.eval_episode_config = @EpisodeDescriptionConfig()
Learner.embedding_fn = @four_layer_convnet
Trainer.distribute = False
Trainer.seed = {seed}
Trainer.num_updates = {num_updates}
Trainer.num_eval_episodes = 1
Trainer.log_every = 1
Trainer.checkpoint_every = 100000000
Trainer.validate_every = 100000000
final_test.enabled = False
compute.policy = '{policy}'
"""
UPDATE_LINE = re.compile(r"^\[step (\d+)/")


def child(args):
    """ctx_tf's launcher on the run of the module docstring; prints `RESULT <json>`."""
    import numpy as np
    import tensorflow as tf

    from ctx_tf import train
    from ctx_tf.data import pipeline
    from ctx_tf.training import loop

    sizes, seeds, times, step0 = [], [], {}, []
    stream = loop.Trainer.train_episodes

    def recorded_episodes(self, seed):  # (ways, support, query) of every training episode
        seeds.append(seed)
        for episode in stream(self, seed):
            sizes.append((int(np.max(episode.support_labels)) + 1,
                          int(episode.support_labels.shape[0]),
                          int(episode.query_labels.shape[0])))
            yield episode

    def timed_print(message):
        now = time.time()
        match = UPDATE_LINE.match(message)
        if match:
            times[int(match.group(1))] = now
        elif message.startswith("[step 0] validation"):
            step0.append(float(re.search(r"\(([0-9.]+) s\)", message).group(1)))

    loop.Trainer.train_episodes = recorded_episodes
    work = tempfile.mkdtemp(prefix="train_run_")
    try:
        config = os.path.join(work, "run.gin")
        with open(config, "w") as f:
            f.write(GIN.format(seed=args.episode_seed, num_updates=args.steps + 1,
                               policy=args.policy))
        train.run([config], [], args.records_root_dir, os.path.join(work, "checkpoints"),
                  os.path.join(work, "summaries"), print_fn=timed_print)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    first, last = times[1], times[args.steps + 1]
    timed = sizes[1:args.steps + 1]
    print("RESULT " + json.dumps(dict(
        updates_per_s=args.steps / (last - first), first_step_s=first - START,
        step0_validation_s=step0[0] if step0 else 0.0,
        peak_mb=machine.Peak.peak_rss_bytes() / 2 ** 20, matmul_gflops=machine.matmul_gflops(),
        tf_version=tf.__version__, sizes=sizes[:args.steps + 1],
        mean_way=float(np.mean([s[0] for s in timed])),
        mean_support=float(np.mean([s[1] for s in timed])),
        mean_query=float(np.mean([s[2] for s in timed])),
        sampler_seed=pipeline.sampler_seed(seeds[0], 0))), flush=True)


def run_row(args, row, seed):
    """(result dict or None, stderr tail) of one row's child process."""
    code, python, policy = row
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if code == "official":
        cmd = [python, os.path.join(HERE, "official_trainer.py"),
               f"--records_root_dir={args.records_root_dir}", f"--steps={args.steps}"]
        cmd += [] if seed is None else [f"--sampler_seed={seed}"]
        env["PYTHONPATH"] = args.official_path
    else:
        cmd = [python, os.path.abspath(__file__), "--child", f"--policy={policy}",
               f"--records_root_dir={args.records_root_dir}", f"--steps={args.steps}",
               f"--episode_seed={args.episode_seed}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return None, " ".join(proc.stderr.strip()[-400:].split())
    return json.loads(lines[-1][len("RESULT "):]), ""


def label(row, results):
    code, python, policy = row
    version = next((r[row]["tf_version"] for r in results if r.get(row)), "?")
    return f"{'official trainer' if code == 'official' else 'ctx_tf'} (TF {version}) {policy}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--policy", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--records_root_dir", required=True,
                        help="records root holding omniglot/ (the official layout)")
    parser.add_argument("--policies", default="float32,mixed_bfloat16",
                        help="comma-separated Keras policies of the ctx_tf rows")
    parser.add_argument("--steps", type=int, default=30, help="timed updates after the first")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--episode_seed", type=int, default=0,
                        help="ctx_tf's Trainer.seed (initialization and training episodes)")
    parser.add_argument("--official_python", default=None,
                        help="also run the official trainer with this Python")
    parser.add_argument("--official_path", default="",
                        help="PYTHONPATH of the official rows: the meta-dataset checkout and "
                             "its simclr and task_adaptation checkouts")
    parser.add_argument("--ctx_tf_python_215", default=None,
                        help="also run the ctx_tf rows with this Python (ctx_tf installed "
                             "with tensorflow==2.15.1 and tf-keras==2.15.1)")
    args = parser.parse_args()
    if args.child:
        return child(args)
    policies = args.policies.split(",")
    rows = [("ctx_tf", sys.executable, p) for p in policies]
    if args.ctx_tf_python_215:
        rows += [("ctx_tf", args.ctx_tf_python_215, p) for p in policies]
    if args.official_python:
        rows.append(("official", args.official_python, "float32"))
    print(f"{machine.describe()} (this process); {rounds_lib.load_average()}")
    print(f"training runs: Omniglot TRAIN of {args.records_root_dir}, variable way and shot, "
          f"84 px, four-layer convnet + CTX, one device; step-0 validation (1 episode) and "
          f"checkpoint, then 1 + {args.steps} updates; {args.rounds} rounds, the row order "
          "alternating", flush=True)
    print("\n| round | row | updates/s | process start to update 1 (s) | of which step-0 "
          "validation (s) | peak RSS (MB) | mean way / support / query | in-run matmul "
          "GFLOP/s | load before |")
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    results, seed = [], None
    for number, order in enumerate(rounds_lib.orders(rows, args.rounds), 1):
        # The official row needs the sampler seed of a ctx_tf row: run one first.
        order = sorted(order, key=lambda row: row[0] == "official" and seed is None)
        results.append({})
        for row in order:
            load = os.getloadavg()[0]
            r, error = run_row(args, row, seed)
            results[-1][row] = r
            if r is None:
                print(f"| {number} | {row[0]} {row[2]} ({row[1]}) | failed: {error} |",
                      flush=True)
                continue
            seed = r.get("sampler_seed", seed)
            print(f"| {number} | {label(row, results)} | {r['updates_per_s']:.3f} | "
                  f"{r['first_step_s']:.1f} | {r['step0_validation_s']:.1f} | "
                  f"{r['peak_mb']:.0f} | {r['mean_way']:.1f} / {r['mean_support']:.0f} / "
                  f"{r['mean_query']:.0f} | {r['matmul_gflops']:.0f} | {load:.1f} |",
                  flush=True)
    print_ratios(rows, results)
    print(rounds_lib.load_average() + " at the end")


def print_ratios(rows, results):
    official = next((row for row in rows if row[0] == "official"), None)
    if official is None:
        return
    print("\n| ctx_tf row | updates/s / official's, per round | median | official's time to "
          "update 1 / this row's, per round | median |")
    print("|---|---|---|---|---|")
    for row in rows:
        if row == official:
            continue
        speed = rounds_lib.ratios(results, row, official, lambda r: r["updates_per_s"])
        start = rounds_lib.ratios(results, official, row, lambda r: r["first_step_s"])
        print(f"| {label(row, results)} | {rounds_lib.summary(speed)} | "
              f"{rounds_lib.summary(start)} |")
    same = [r[row]["sizes"] == r[official]["sizes"] for r in results for row in rows
            if row != official and r.get(row) and r.get(official)]
    print(f"\nsame way, support and query counts update for update: {sum(same)} of "
          f"{len(same)} ctx_tf/official pairs")


if __name__ == "__main__":
    main()
