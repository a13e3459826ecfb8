"""CrossTransformer head: forward+backward time, GFLOP/s and peak memory on 14x14x512 features.

    python benchmarks/ctx_head.py [--quick] [--memory_budget_mb 1024] [--block_mb 8] [--repeats 2]
        [--policies float32,mixed_bfloat16] [--rounds 5]

Each case runs in its own subprocess so that its peak resident memory (ru_maxrss) is its own;
the subprocess also measures a plain 2048^3 tf.matmul right before the case, and the table
reports the head's useful rate as a fraction of that in-run matmul rate.

Useful FLOPs count the matmuls of the math once (forward: 1x1 projections, scores, attended
values; backward: twice the forward), not the recomputation, so recomputing is a cost here.
Methods:
  ours            the layer as configured (blocks of [query rows, class positions] sized by
                  `--block_mb` / `--memory_budget_mb`, hand-written backward with recomputation);
  ours 1q blocks  the layer with `query_chunk_size=1` (blocks of one query image);
  official 1q     the official strategy, driven here independently of the layer's blocking: one
                  query image at a time, a dense per-query forward (the layer's
                  `rematerialize=False` formulation: all support positions, per-image max,
                  segment ops per class), and a backward pass that recomputes each query's
                  forward and differentiates it with autodiff. `speedup` = its time / ours.
`--policies` runs `ours` under each Keras mixed-precision policy (layer built under it,
float32 variables and statistics; the inputs stay float32 and `project()` casts them);
`official 1q` always runs in float32, as officially. The in-run matmul rate is float32.
With `--official_python` (and `--official_path`), a row `official code` times the unmodified
official head itself (`official_head.py`, its own Python environment and TensorFlow, a TF1
graph session) on the same episode sizes, in every round.
(Until the blocked head, `baseline` was the layer itself with `query_chunk_size=1`, which then
ran exactly the official strategy; `official 1q` keeps that computation fixed.)
For the largest episode only `--max_queries` queries are timed (the chunks are independent, so
time scales linearly) and the time is extrapolated to all queries; memory is measured with the
full support set and reported for the queries actually run.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import textwrap

HW = 14 * 14
CHANNELS = 512
DIM = 128

CASES = [
    # name, support images, ways, query images
    ("5-way 5-shot 50q", 25, 5, 50),
    ("10-way 10-shot 100q", 100, 10, 100),
    ("max: 50-way 500s 500q", 500, 50, 500),
]

_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import numpy as np
    import tensorflow as tf
    from ctx_tf.models.cross_transformer import CrossTransformer, class_attention_distances

    cfg = json.loads(sys.argv[1])
    from ctx_tf.keras import keras


    def official_distances(sk, sv, labels, num_classes, qk, qv, scale):
        # The official strategy: one query at a time forward, recompute + autodiff backward.
        def one(sk, sv, qk_i, qv_i):
            return class_attention_distances(sk, sv, labels, num_classes, qk_i[None],
                                             qv_i[None], scale)[0]

        @tf.custom_gradient
        def fn(sk, sv, qk, qv):
            out = tf.map_fn(lambda x: one(sk, sv, x[0], x[1]), (qk, qv),
                            fn_output_signature=tf.TensorSpec([None], sk.dtype),
                            parallel_iterations=1)

            def grad(upstream):
                def body(i, d_sk, d_sv, d_qk, d_qv):
                    with tf.GradientTape() as tape:
                        qk_i, qv_i = qk[i], qv[i]
                        tape.watch([sk, sv, qk_i, qv_i])
                        d_i = one(sk, sv, qk_i, qv_i)
                    g = tape.gradient(d_i, [sk, sv, qk_i, qv_i], output_gradients=upstream[i])
                    return i + 1, d_sk + g[0], d_sv + g[1], d_qk.write(i, g[2]), d_qv.write(i, g[3])

                n = tf.shape(qk)[0]
                _, d_sk, d_sv, d_qk, d_qv = tf.while_loop(
                    lambda i, *_: i < n, body,
                    (tf.constant(0), tf.zeros_like(sk), tf.zeros_like(sv),
                     tf.TensorArray(qk.dtype, size=n), tf.TensorArray(qv.dtype, size=n)),
                    parallel_iterations=1)
                return d_sk, d_sv, d_qk.stack(), d_qv.stack()

            return out, grad

        return fn(sk, sv, qk, qv)

    a = tf.random.normal([2048, 2048])
    matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, a)))
    matmul()
    t0 = time.perf_counter()
    for _ in range(5):
        matmul().numpy()
    matmul_rate = 5 * 2 * 2048 ** 3 / (time.perf_counter() - t0) / 1e9
    del a

    ns, ways, nq = cfg["support"], cfg["ways"], cfg["queries"]
    labels = tf.constant(np.random.default_rng(0).permutation(np.arange(ns) % ways), tf.int32)
    support = tf.random.normal([ns, 14, 14, 512])
    query = tf.random.normal([nq, 14, 14, 512])
    keras.mixed_precision.set_global_policy(cfg["policy"])
    layer = CrossTransformer(query_dim=128, val_dim=128, rematerialize=True,
                             query_chunk_size=cfg["chunk"],
                             memory_budget_bytes=cfg["budget_mb"] << 20,
                             attention_block_bytes=int(cfg["block_mb"] * (1 << 20)))
    keras.mixed_precision.set_global_policy("float32")
    layer.build(support.shape)

    def head(support, labels, query):
        if cfg["method"] != "official":
            return layer(support, labels, query)
        sk, sv = layer.project(support)
        qk, qv = layer.project(query)
        flat = lambda x: tf.reshape(x, [tf.shape(x)[0], 196, x.shape[-1]])
        return -official_distances(flat(sk), flat(sv), labels, tf.reduce_max(labels) + 1,
                                   flat(qk), flat(qv), 1.0 / 128 ** 0.5)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch([support, query])
            logits = head(support, labels, query)
            objective = tf.reduce_sum(logits)
        grads = tape.gradient(objective, [support, query] + layer.trainable_variables)
        return [tf.reduce_sum(g) for g in grads]

    [g.numpy() for g in step()]
    times = []
    for _ in range(cfg["repeats"]):
        t0 = time.perf_counter()
        [g.numpy() for g in step()]
        times.append(time.perf_counter() - t0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    logit_diff = None
    if cfg["method"] == "official":  # same logits as the layer (after the memory reading)
        reference = tf.function(lambda: head(support, labels, query))()
        ours = tf.function(lambda: layer(support, labels, query))()
        logit_diff = float(tf.reduce_max(tf.abs(reference - ours))
                           / tf.reduce_max(tf.abs(reference)))
    print("RESULT " + json.dumps(dict(seconds=min(times), matmul_gflops=matmul_rate, peak_bytes=rss,
                                      logit_diff=logit_diff)))
    """
)


def useful_flops(support, queries):
    s, q = support * HW, queries * HW
    forward = 2 * (support + queries) * HW * CHANNELS * 2 * DIM  # key and value projections
    forward += 2 * s * q * DIM * 2  # scores and attended values
    return 3 * forward  # forward + backward (two matmuls per forward matmul)


def run_case(support, ways, queries, method, chunk, budget_mb, block_mb, repeats,
             policy="float32", official=None):
    """One child's RESULT; `official` = (python, PYTHONPATH) runs official_head.py instead."""
    cfg = dict(support=support, ways=ways, queries=queries, method=method, chunk=chunk,
               budget_mb=budget_mb, block_mb=block_mb, repeats=repeats, policy=policy)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if official:
        env["PYTHONPATH"] = official[1]
        cmd = [official[0], os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                         "official_head.py"), f"--support={support}",
               f"--ways={ways}", f"--queries={queries}", f"--repeats={repeats}"]
    else:
        cmd = [sys.executable, "-c", _CHILD, json.dumps(cfg)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"benchmark child failed for {cfg}:\n{proc.stderr[-3000:]}")


def run_row(args, name, support, ways, queries, method, key, chunk, policy, ours_seconds,
            max_queries, repeats, logit_diffs):
    """Runs and prints one table row; returns its (possibly extrapolated) seconds and records
    the official method's logit difference from ours in `logit_diffs[name]` (max over rounds)."""
    run_queries = queries
    if support == 500:
        run_queries = min(queries, max_queries)
    # The one-query methods run a subset of a large episode's queries (extrapolated); the
    # official code runs every query but the maximal episode's (its loop grows its gradients by
    # concatenation, so the extrapolation flatters it there).
    if (key in ("ours1q", "official") and queries > 50
            or key == "official_code" and support == 500):
        run_queries = min(run_queries, args.baseline_queries)
    result = run_case(support, ways, run_queries, key, chunk, args.memory_budget_mb,
                      args.block_mb, repeats, policy,
                      (args.official_python, args.official_path) if key == "official_code"
                      else None)
    seconds = result["seconds"] * queries / run_queries  # extrapolated when subset
    rate = useful_flops(support, queries) / seconds / 1e9
    note = "" if run_queries == queries else "*"
    speedup = ""
    if method != "ours (blocked)" and ours_seconds:
        speedup = f"{seconds / ours_seconds:.2f}x"
    print(f"{name:24s} {method:22s} {run_queries:>10d}{note:1s} {seconds:10.2f} "
          f"{rate:8.1f} {result['matmul_gflops']:7.1f} "
          f"{rate / result['matmul_gflops']:6.0%} {result['peak_bytes'] / 2**30:7.2f}GB "
          f"{speedup:>8s}", flush=True)
    if result.get("logit_diff") is not None:
        logit_diffs[name] = max(logit_diffs.get(name, 0.0), result["logit_diff"])
    return seconds


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one timed repeat, 10 timed queries for the maximal episode")
    parser.add_argument("--memory_budget_mb", type=int, default=1024,
                        help="CrossTransformer memory_budget_bytes, in MiB")
    parser.add_argument("--block_mb", type=float, default=8,
                        help="CrossTransformer attention_block_bytes, in MiB")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max_queries", type=int, default=None,
                        help="queries timed in the maximal episode (default 50, --quick 10)")
    parser.add_argument("--cases", default="0,1,2",
                        help="comma-separated indices into the three episodes (small, medium, max)")
    parser.add_argument("--methods", default="ours,official",
                        help="comma-separated subset of ours, ours1q, official")
    parser.add_argument("--baseline_queries", type=int, default=10,
                        help="queries timed for the one-query methods on the larger episodes")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the methods of each episode this many times, interleaved, "
                             "and report the official / ours ratio of each round (the machine's "
                             "speed drifts between processes)")
    parser.add_argument("--official_python", default=None,
                        help="also time the unmodified official head (official_head.py) with "
                             "this Python, in every round")
    parser.add_argument("--official_path", default="",
                        help="PYTHONPATH for --official_python (see official_trainer.py)")
    parser.add_argument("--policies", default="float32",
                        help="comma-separated Keras policies for `ours` (e.g. "
                             "float32,mixed_bfloat16)")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    max_queries = args.max_queries or (10 if args.quick else 50)

    import tensorflow as tf  # only for the version string; cases run in subprocesses

    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical cores), TensorFlow {tf.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"memory budget {args.memory_budget_mb} MiB, attention block {args.block_mb:g} MiB; "
          f"features 14x14x512; dims 128/128\n")
    header = (f"{'episode':24s} {'method':22s} {'queries run':>11s} {'fwd+bwd s':>10s} "
              f"{'GFLOP/s':>8s} {'matmul':>7s} {'ratio':>6s} {'peak RSS':>9s} {'speedup':>8s}")
    print(header)
    print("-" * len(header))
    selected = [CASES[int(i)] for i in args.cases.split(",")]
    methods = [m for m in (("ours (blocked)", "ours", None), ("ours 1q blocks", "ours1q", 1),
                           ("official 1q recompute", "official", 1))
               if m[1] in args.methods.split(",")]
    short = {"float32": "", "mixed_bfloat16": " bf16", "mixed_float16": " fp16"}
    methods = [(name + short[policy], key, chunk, policy) for name, key, chunk in methods
               for policy in (args.policies.split(",") if key == "ours" else ["float32"])]
    if args.official_python:
        methods.append(("official code", "official_code", 1, "float32"))
    checks, logit_diffs = [], {}
    for name, support, ways, queries in selected:
        ratios = {}  # (reference, ours method) -> reference time / ours time, one per round
        for _ in range(args.rounds):
            rows = {}
            for method, key, chunk, policy in methods:
                rows[method] = run_row(args, name, support, ways, queries, method, key, chunk,
                                       policy, rows.get("ours (blocked)"), max_queries,
                                       repeats, logit_diffs)
            for reference in ("official 1q recompute", "official code"):
                if reference not in rows:
                    continue
                for method, seconds in rows.items():
                    if method.startswith("ours (blocked)"):
                        ratios.setdefault((reference, method), []).append(
                            rows[reference] / seconds)
        if name in logit_diffs:
            checks.append(f"{name}: official vs ours, max |logit difference| / max |logit| = "
                          f"{logit_diffs[name]:.1e}")
        for (reference, method), values in ratios.items():
            checks.append(f"{name}: {reference} time / {method} time = "
                          + ", ".join(f"{r:.2f}x" for r in values)
                          + (f" (median {statistics.median(values):.2f}x)"
                             if len(values) > 1 else ""))
    print("\n" + "\n".join(checks) if checks else "")
    print("* time extrapolated linearly from the queries run; peak RSS is for the queries run "
          "(the process includes TensorFlow itself, ~0.5 GB)")
    print("speedup = that method's time / ours (blocked, float32) time; "
          "ratio = useful GFLOP/s / in-run 2048^3 matmul GFLOP/s")


if __name__ == "__main__":
    main()
