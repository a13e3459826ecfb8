"""The unmodified official CrossTransformer head, forward + backward: ctx_head.py's anchor row.

    python benchmarks/ctx_head.py --official_python=<python> --official_path=<paths> ...

runs this file with `<python>` and `<paths>` as its PYTHONPATH, set up as for
`official_trainer.py` (a google-research/meta-dataset checkout and its dependencies; see that
file's docstring). It imports nothing from ctx_tf.

What runs is the official `CrossTransformerLearner.compute_logits_for_episode` (1x1 key and
value projections, then `_get_dist_rematerialize`: one query image at a time forward, and a
backward pass that recomputes each query and differentiates it) in a TF1 graph session, on
random 14x14x512 support and query features of the episode size given, and the gradients of
the summed logits with respect to both feature maps and the projections -- the computation
ctx_head.py times for its own layer. Prints one line `RESULT <json>` with the best time of
`--repeats` steps after a warm-up, the in-run float32 matmul rate and the peak memory.
"""

import argparse
import collections
import json
import resource
import time

from official_trainer import matmul_rate  # this folder is the script's sys.path[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--support", type=int, required=True)
    parser.add_argument("--ways", type=int, required=True)
    parser.add_argument("--queries", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import numpy as np
    import tensorflow.compat.v1 as tf
    from meta_dataset.learners import metric_learners

    tf.disable_v2_behavior()  # the official code builds TF1 graphs
    rate = matmul_rate()
    rng = np.random.RandomState(0)
    labels = rng.permutation(np.arange(args.support) % args.ways)
    with tf.Graph().as_default():
        learner = metric_learners.CrossTransformerLearner(
            is_training=True, logit_dim=args.ways, transductive_batch_norm=False,
            backprop_through_moments=True, embedding_fn=None, input_shape=[224, 224, 3],
            query_dim=128, val_dim=128, rematerialize=True)
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
                sess.run(fetch)
                times.append(time.perf_counter() - start)
            logits_value = sess.run(logits)
    print("RESULT " + json.dumps(dict(
        seconds=min(times), matmul_gflops=rate,
        peak_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        num_variables=len(variables), logits_shape=list(logits_value.shape))), flush=True)


if __name__ == "__main__":
    main()
