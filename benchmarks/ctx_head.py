"""CrossTransformer head: forward+backward time, GFLOP/s and peak memory on 14x14x512 features.

    python benchmarks/ctx_head.py [--quick] [--memory_budget_mb 1024] [--repeats 2]

Each case runs in its own subprocess so that its peak resident memory (ru_maxrss) is its own;
the subprocess also measures a plain 2048^3 tf.matmul right before the case, and the table
reports the head's useful rate as a fraction of that in-run matmul rate.

Useful FLOPs count the matmuls of the math once (forward: 1x1 projections, scores, attended
values; backward: twice the forward), not the recomputation, so recomputing is a cost here.
`baseline` is the official strategy: one query at a time, recomputed in the backward pass.
For the largest episode only `--max_queries` queries are timed (the chunks are independent, so
time scales linearly) and the time is extrapolated to all queries; memory is measured with the
full support set and reported for the queries actually run.
"""

import argparse
import json
import os
import platform
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
    from ctx_tf.models.cross_transformer import CrossTransformer

    cfg = json.loads(sys.argv[1])
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
    layer = CrossTransformer(query_dim=128, val_dim=128, rematerialize=True,
                             query_chunk_size=cfg["chunk"],
                             memory_budget_bytes=cfg["budget_mb"] << 20)
    layer.build(support.shape)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch([support, query])
            logits = layer(support, labels, query)
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
    print("RESULT " + json.dumps(dict(seconds=min(times), matmul_gflops=matmul_rate, peak_bytes=rss)))
    """
)


def useful_flops(support, queries):
    s, q = support * HW, queries * HW
    forward = 2 * (support + queries) * HW * CHANNELS * 2 * DIM  # key and value projections
    forward += 2 * s * q * DIM * 2  # scores and attended values
    return 3 * forward  # forward + backward (two matmuls per forward matmul)


def run_case(support, ways, queries, chunk, budget_mb, repeats):
    cfg = dict(support=support, ways=ways, queries=queries, chunk=chunk, budget_mb=budget_mb,
               repeats=repeats)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(cfg)], capture_output=True,
                          text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"benchmark child failed for {cfg}:\n{proc.stderr[-3000:]}")


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
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max_queries", type=int, default=None,
                        help="queries timed in the maximal episode (default 50, --quick 10)")
    parser.add_argument("--cases", default="0,1,2",
                        help="comma-separated indices into the three episodes (small, medium, max)")
    parser.add_argument("--methods", default="ours,baseline", help="ours, baseline or both")
    parser.add_argument("--baseline_queries", type=int, default=10,
                        help="queries timed for the one-query baseline on the larger episodes")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    max_queries = args.max_queries or (10 if args.quick else 50)

    import tensorflow as tf  # only for the version string; cases run in subprocesses

    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical cores), TensorFlow {tf.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"memory budget {args.memory_budget_mb} MiB; features 14x14x512; dims 128/128\n")
    header = (f"{'episode':24s} {'method':22s} {'queries run':>11s} {'fwd+bwd s':>10s} "
              f"{'GFLOP/s':>8s} {'matmul':>7s} {'ratio':>6s} {'peak RSS':>9s} {'speedup':>8s}")
    print(header)
    print("-" * len(header))
    selected = [CASES[int(i)] for i in args.cases.split(",")]
    methods = [m for m in (("ours (budget chunks)", None), ("baseline 1 query", 1))
               if m[0].split()[0] in args.methods.split(",")]
    for name, support, ways, queries in selected:
        rows = {}
        for method, chunk in methods:
            run_queries = queries
            if support == 500:
                run_queries = min(queries, max_queries)
            if method.startswith("baseline") and queries > 50:
                run_queries = min(run_queries, args.baseline_queries)
            result = run_case(support, ways, run_queries, chunk, args.memory_budget_mb, repeats)
            seconds = result["seconds"] * queries / run_queries  # extrapolated when subset
            rate = useful_flops(support, queries) / seconds / 1e9
            rows[method] = seconds
            note = "" if run_queries == queries else "*"
            speedup = ""
            if method.startswith("baseline") and "ours (budget chunks)" in rows:
                speedup = f"{seconds / rows['ours (budget chunks)']:.1f}x"
            print(f"{name:24s} {method:22s} {run_queries:>10d}{note:1s} {seconds:10.2f} "
                  f"{rate:8.1f} {result['matmul_gflops']:7.1f} "
                  f"{rate / result['matmul_gflops']:6.0%} {result['peak_bytes'] / 2**30:7.2f}GB "
                  f"{speedup:>8s}", flush=True)
    print("\n* time extrapolated linearly from the queries run; peak RSS is for the queries run "
          "(the process includes TensorFlow itself, ~0.5 GB)")
    print("speedup = baseline time / our time; ratio = useful GFLOP/s / in-run 2048^3 matmul GFLOP/s")


if __name__ == "__main__":
    main()
