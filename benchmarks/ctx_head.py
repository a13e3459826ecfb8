"""CrossTransformer head: forward+backward time, GFLOP/s and peak memory on 14x14x512 features.

    python benchmarks/ctx_head.py [--quick] [--memory_budget_mb 1024] [--block_mb 8] [--repeats 2]
        [--policies float32,mixed_bfloat16] [--rounds 3] [--cases 0,1]
        [--official_python=<python> --official_path=<paths>] [--ctx_tf_python_215=<python>]

Each row runs in its own subprocess, so that its peak resident memory (`VmHWM`) is its own;
the subprocess also times a plain 2048^3 float32 matmul right before the row (`machine.py`),
and the table reports the head's useful rate as a fraction of that in-run matmul rate.

Useful FLOPs count the matmuls of the math once (forward: 1x1 projections, scores, attended
values; backward: twice the forward), not the recomputation, so recomputing is a cost here.
Rows (methods):
  ours            the layer as configured (blocks of [query rows, class positions] sized by
                  `--block_mb` / `--memory_budget_mb`, hand-written backward with recomputation),
                  under each Keras policy of `--policies` (layer built under it, float32
                  variables and statistics; the inputs stay float32 and `project()` casts them);
                  with `--ctx_tf_python_215`, the same rows again run by that Python (ctx_tf
                  installed with tensorflow==2.15.1 and tf-keras==2.15.1, the official code's
                  TensorFlow);
  ours 1q blocks  the layer with `query_chunk_size=1` (blocks of one query image);
  official 1q     the official strategy re-implemented here, driven independently of the
                  layer's blocking: one query image at a time, a dense per-query forward (the
                  layer's `rematerialize=False` formulation: all support positions, per-image
                  max, segment ops per class), and a backward pass that recomputes each query's
                  forward and differentiates it with autodiff (float32, a TF2 function; no
                  stand-in for the official code: some rounds faster than it, some slower);
  official code   with `--official_python` (and `--official_path`): the unmodified official
                  head (`official_head.py`, its own environment: TF 2.15.1, graph mode as its
                  trainer runs it), `rematerialize=True` (its default, one query at a time) and
                  `rematerialize=False` (all queries at once: more memory, no recomputation).
`--rounds` interleaved rounds (`rounds.py`: every row once per round, the order alternating);
at the end, each reference's time / each `ours` row's time, per round and the median.
(Until the blocked head, `baseline` was the layer itself with `query_chunk_size=1`, which then
ran exactly the official strategy; `official 1q` keeps that computation fixed.)
For the largest episode only `--max_queries` queries are timed (the chunks are independent, so
time scales linearly) and the time is extrapolated to all queries; memory is measured with the
full support set and reported for the queries actually run.
"""

import argparse
import json
import os
import subprocess
import sys
import textwrap

import machine  # this folder is the script's sys.path[0]
import rounds as rounds_lib

HERE = os.path.dirname(os.path.abspath(__file__))

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
    import json, sys, time
    import numpy as np
    import tensorflow as tf
    from ctx_tf.models.cross_transformer import CrossTransformer, class_attention_distances

    cfg = json.loads(sys.argv[1])
    sys.path.insert(0, cfg["benchmarks"])
    import machine
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

    matmul_rate = machine.matmul_gflops()

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
    rss = machine.Peak.peak_rss_bytes()
    logit_diff = None
    if cfg["method"] == "official":  # same logits as the layer (after the memory reading)
        reference = tf.function(lambda: head(support, labels, query))()
        ours = tf.function(lambda: layer(support, labels, query))()
        logit_diff = float(tf.reduce_max(tf.abs(reference - ours))
                           / tf.reduce_max(tf.abs(reference)))
    print("RESULT " + json.dumps(dict(seconds=min(times), matmul_gflops=matmul_rate, peak_bytes=rss,
                                      logit_diff=logit_diff, tf_version=tf.__version__)))
    """
)


def useful_flops(support, queries):
    s, q = support * HW, queries * HW
    forward = 2 * (support + queries) * HW * CHANNELS * 2 * DIM  # key and value projections
    forward += 2 * s * q * DIM * 2  # scores and attended values
    return 3 * forward  # forward + backward (two matmuls per forward matmul)


def run_case(cfg, python=None, official=None):
    """One child's RESULT for `cfg`: ctx_tf's child run by `python` (default this one), or with
    `official` = (python, PYTHONPATH, rematerialize) the official head (official_head.py)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if official:
        env["PYTHONPATH"] = official[1]
        cmd = [official[0], os.path.join(HERE, "official_head.py"), f"--support={cfg['support']}",
               f"--ways={cfg['ways']}", f"--queries={cfg['queries']}",
               f"--repeats={cfg['repeats']}", f"--rematerialize={int(official[2])}"]
    else:
        cmd = [python or sys.executable, "-c", _CHILD, json.dumps(dict(cfg, benchmarks=HERE))]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"benchmark child failed for {cfg}:\n{proc.stderr[-3000:]}")


def run_row(args, number, case, method, max_queries, repeats, logit_diffs):
    """Runs and prints one table row; returns its (possibly extrapolated) seconds and records
    the official method's logit difference from ours in `logit_diffs[name]` (max over rounds)."""
    name, support, ways, queries = case
    label, key, chunk, policy, python = method
    run_queries = queries
    if support == 500:
        run_queries = min(queries, max_queries)
    # The one-query methods run a subset of a large episode's queries (extrapolated); the
    # official code runs every query but the maximal episode's (its loop grows its gradients by
    # concatenation, so the extrapolation flatters it there).
    if (key in ("ours1q", "official") and queries > 50
            or key.startswith("official_") and support == 500):
        run_queries = min(run_queries, args.baseline_queries)
    cfg = dict(support=support, ways=ways, queries=run_queries, method=key, chunk=chunk,
               budget_mb=args.memory_budget_mb, block_mb=args.block_mb, repeats=repeats,
               policy=policy)
    official = None
    if key.startswith("official_"):
        official = (args.official_python, args.official_path, key == "official_code")
    result = run_case(cfg, python, official)
    seconds = result["seconds"] * queries / run_queries  # extrapolated when subset
    rate = useful_flops(support, queries) / seconds / 1e9
    version = result.get("tf_version") or result.get("tf_mode", {}).get("version", "?")
    print(f"| {number} | {name} | {label} | {version} | {run_queries}"
          f"{'' if run_queries == queries else '*'} | {seconds:.2f} | {rate:.1f} | "
          f"{result['matmul_gflops']:.0f} | {rate / result['matmul_gflops']:.0%} | "
          f"{result['peak_bytes'] / 2**30:.2f} |", flush=True)
    if result.get("logit_diff") is not None:
        logit_diffs[name] = max(logit_diffs.get(name, 0.0), result["logit_diff"])
    return seconds


def methods_of(args):
    """(label, key, query chunk, policy, python) of every row."""
    short = {"float32": "", "mixed_bfloat16": " bf16", "mixed_float16": " fp16"}
    chosen = args.methods.split(",")
    pythons = [(sys.executable, "")]
    if args.ctx_tf_python_215:
        pythons.append((args.ctx_tf_python_215, " (TF 2.15.1)"))
    methods = [("ours" + short[policy] + suffix, "ours", None, policy, python)
               for python, suffix in pythons for policy in args.policies.split(",")
               if "ours" in chosen]
    if "ours1q" in chosen:
        methods.append(("ours 1q blocks", "ours1q", 1, "float32", None))
    if "official" in chosen:
        methods.append(("official 1q (re-implemented)", "official", 1, "float32", None))
    if args.official_python:
        methods += [("official code", "official_code", 1, "float32", None),
                    ("official code, rematerialize=False", "official_dense", None, "float32",
                     None)]
    return methods


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
                        help="interleaved rounds: every row of an episode once per round, the "
                             "order alternating; ratios per round and their median")
    parser.add_argument("--official_python", default=None,
                        help="also time the unmodified official head (official_head.py) with "
                             "this Python, with rematerialize True and False")
    parser.add_argument("--official_path", default="",
                        help="PYTHONPATH for --official_python (see official_trainer.py)")
    parser.add_argument("--ctx_tf_python_215", default=None,
                        help="also run the `ours` rows with this Python (ctx_tf installed with "
                             "tensorflow==2.15.1 and tf-keras==2.15.1)")
    parser.add_argument("--policies", default="float32",
                        help="comma-separated Keras policies for `ours` (e.g. "
                             "float32,mixed_bfloat16)")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    max_queries = args.max_queries or (10 if args.quick else 50)

    print(f"{machine.describe()} (this process); {rounds_lib.load_average()}")
    print(f"memory budget {args.memory_budget_mb} MiB, attention block {args.block_mb:g} MiB; "
          f"features 14x14x512; dims 128/128; best of {repeats} fwd+bwd after a warm-up; "
          f"{args.rounds} round(s), the row order alternating\n")
    print("| round | episode | method | TF | queries run | fwd+bwd s | useful GFLOP/s | "
          "in-run matmul GFLOP/s | of matmul | peak RSS GB |")
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
    methods = methods_of(args)
    references = [m[0] for m in methods if m[1].startswith("official")]
    ratio_rows, logit_diffs = [], {}
    for case in [CASES[int(i)] for i in args.cases.split(",")]:
        results = []  # one {method label: seconds} per round
        for number, order in enumerate(rounds_lib.orders(methods, args.rounds), 1):
            results.append({m[0]: run_row(args, number, case, m, max_queries, repeats,
                                          logit_diffs) for m in order})
        for reference in references:
            for ours in (m[0] for m in methods if m[1] == "ours"):
                values = rounds_lib.ratios(results, reference, ours, lambda x: x)
                ratio_rows.append(f"| {case[0]} | {reference} | {ours} | "
                                  f"{rounds_lib.summary(values)} |")
    print("\n* time extrapolated linearly from the queries run; peak RSS is for the queries "
          "run (the process includes TensorFlow itself, ~0.5 GB)")
    if ratio_rows:
        print("\n| episode | reference | ours row | reference time / ours time, per round | "
              "median |")
        print("|---|---|---|---|---|")
        print("\n".join(ratio_rows))
    for name, diff in logit_diffs.items():
        print(f"{name}: official 1q vs ours, max |logit difference| / max |logit| = {diff:.1e}")
    print(rounds_lib.load_average() + " at the end")


if __name__ == "__main__":
    main()
