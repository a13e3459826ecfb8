"""The unmodified official CrossTransformer head, forward + backward: ctx_head.py's anchor row.

    python benchmarks/ctx_head.py --official_python=<python> --official_path=<paths> ...

runs this file with `<python>` and `<paths>` as its PYTHONPATH, set up as for
`official_trainer.py` (a google-research/meta-dataset checkout and its dependencies; see that
file's docstring). It imports nothing from ctx_tf.

What runs is the official `CrossTransformerLearner.compute_logits_for_episode` (1x1 key and
value projections, then with `--rematerialize=1`, the official default, `_get_dist_rematerialize`:
one query image at a time forward, and a backward pass that recomputes each query and
differentiates it; with `--rematerialize=0`, `_get_dist`: every query at once, autodiff) on
random 14x14x512 support and query features of the episode size given, and the gradients of
the summed logits with respect to both feature maps and the projections -- the computation
ctx_head.py times for its own layer. TensorFlow runs in the official trainer's own mode: the
script imports the official `meta_dataset.train`, whose import turns eager execution off (and
nothing else: control flow v2 and resource variables stay on), and runs the graph in a plain
`tf.compat.v1.Session()`, as the trainer does with `Trainer.enable_tf_optimizations = True`
(its `setups/trainer_config.gin`). Prints one line `RESULT <json>` with the best time of
`--repeats` steps after a warm-up, the in-run float32 matmul rate (graph session), the peak
memory (`VmHWM`) and the TensorFlow mode.
"""

import argparse
import collections
import json
import time

import machine  # this folder is the script's sys.path[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--support", type=int, required=True)
    parser.add_argument("--ways", type=int, required=True)
    parser.add_argument("--queries", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rematerialize", type=int, default=1, choices=(0, 1),
                        help="CrossTransformerLearner.rematerialize (official default 1)")
    args = parser.parse_args()

    import numpy as np
    import tensorflow.compat.v1 as tf
    from meta_dataset import train  # noqa: F401 -- its import sets the trainer's TF mode
    from meta_dataset.learners import metric_learners

    mode = dict(eager=tf.executing_eagerly(), control_flow_v2=tf.control_flow_v2_enabled(),
                resource_variables=tf.resource_variables_enabled(), version=tf.__version__)
    rate = machine.matmul_gflops()
    rng = np.random.RandomState(0)
    labels = rng.permutation(np.arange(args.support) % args.ways)
    with tf.Graph().as_default():
        learner = metric_learners.CrossTransformerLearner(
            is_training=True, logit_dim=args.ways, transductive_batch_norm=False,
            backprop_through_moments=True, embedding_fn=None, input_shape=[224, 224, 3],
            query_dim=128, val_dim=128, rematerialize=bool(args.rematerialize))
        support = tf.Variable(rng.randn(args.support, 14, 14, 512).astype(np.float32))
        query = tf.Variable(rng.randn(args.queries, 14, 14, 512).astype(np.float32))
        # Labels of unknown static shape, as from the official pipeline (its while loops
        # rely on shapes known only at run time).
        onehot = tf.placeholder_with_default(tf.one_hot(labels, args.ways), [None, None])
        data = collections.namedtuple("Episode", "onehot_support_labels")(onehot)
        logits = learner.compute_logits_for_episode(support, query, data)
        variables = tf.trainable_variables()  # the features and the two projections
        grads = tf.gradients(tf.reduce_sum(logits), variables)
        fetch = [tf.reduce_sum(g) for g in grads]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(fetch)
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                grad_sums = sess.run(fetch)
                times.append(time.perf_counter() - start)
            logits_value = sess.run(logits)
    print("RESULT " + json.dumps(dict(
        seconds=min(times), matmul_gflops=rate, peak_bytes=machine.Peak.peak_rss_bytes(),
        tf_mode=mode, num_variables=len(variables), logits_shape=list(logits_value.shape),
        grad_sums=[float(g) for g in grad_sums])),
        flush=True)


if __name__ == "__main__":
    main()
