"""Writes the official-code checkpoint fixture: a CTX checkpoint saved by the unmodified official
TF1 code and the official graph's logits on a fixed episode (tests/test_official_checkpoint.py).

Runs in an environment able to run google-research/meta-dataset (TensorFlow with `tf.compat.v1`,
gin-config, ...; see benchmarks/official_trainer.py) with the official checkout on PYTHONPATH,
and imports nothing from ctx_tf:

    PYTHONPATH=<meta-dataset>:<simclr parent>:<task_adaptation> <official python> \\
        tools/make_official_checkpoint.py [--output_dir tests/fixtures/official_ctx_checkpoint]

What runs is the official `CrossTransformerLearner` (`metric_learners.py`, query and value
dimension 128) on the official `four_layer_convnet` with the official CTX config's batch norm
(`bn.use_ema = True`), in one TF1 graph: an evaluation learner (`is_training=False`: the
support set is normalized with the moving averages) and a training learner
(`is_training=True`: with the support set's moments), sharing their variables as in the
official trainer. Kernels and projections keep the official initializers; the batch-norm
scales and offsets are drawn here (scales of both signs, offsets around 0) and the moving
averages are the official update's, run on `--warmup_episodes` random support sets. The
checkpoint is written by `tf.compat.v1.train.Saver` over the graph's variables except
`replica_` copies, as the official trainer saves them, with `global_step` = the warm-up
updates. The episode (3 ways, 6 support and 5 query images of `--image_size` px, pixels
uint8 scaled to [-1, 1] as the official decoder does) is drawn from `--seed`, so nothing
external is read. The logits of both learners on it (the training learner without running
its moving-average updates) go to `logits.npz`, the episode to `episode.npz`, the provenance
to `provenance.json`. The output folder is replaced as a whole.
"""

import argparse
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile

import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO_ROOT / "tests" / "fixtures" / "official_ctx_checkpoint"
SUPPORT_LABELS = [0, 0, 1, 1, 1, 2]
QUERY_LABELS = [0, 1, 2, 0, 1]
CHECKPOINT_NAME = "model.ckpt"
QUERY_DIM = VAL_DIM = 128
README = """# A CTX checkpoint written by the official code

Made by `tools/make_official_checkpoint.py` (see its docstring) with the unmodified
google-research/meta-dataset code, commit
{commit}, on TensorFlow {tf}; the details are in
`provenance.json`. Inputs are synthetic (drawn from the script's seed); nothing else is read.

- `model.ckpt.*`: the TF1 `Saver` checkpoint of the official CTX learner (four-layer convnet,
  query and value dimension 128, batch-norm moving averages).
- `episode.npz`: the episode (uint8 pixels, scaled to [-1, 1] as the decoder does; labels).
- `logits.npz`: the official graph's logits on it, `eval` (`is_training=False`) and `train`
  (`is_training=True`).

`tests/test_official_checkpoint.py` loads the checkpoint with ctx_tf and compares its logits.
Regenerate (in an environment that runs the official code, see
benchmarks/official_trainer.py):

    PYTHONPATH=<meta-dataset>:<simclr parent>:<task_adaptation> python \\
        tools/make_official_checkpoint.py
"""


def _images(rng, count, image_size):
    return rng.randint(0, 256, size=(count, image_size, image_size, 3)).astype(np.uint8)


def _scaled(pixels):
    return pixels.astype(np.float32) / 127.5 - 1.0


def _official_commit():
    import meta_dataset  # pylint: disable=import-outside-toplevel

    checkout = os.path.dirname(os.path.dirname(os.path.abspath(meta_dataset.__file__)))
    try:
        commit = subprocess.run(["git", "-C", checkout, "rev-parse", "HEAD"], check=True,
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", checkout, "status", "--porcelain", "--",
                                "meta_dataset"], check=True, capture_output=True,
                               text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return checkout, None, None
    return checkout, commit, bool(dirty)


def _learners(tf, image_size):
    """The evaluation and training CTX learners of the official code, in the current graph."""
    import gin  # pylint: disable=import-outside-toplevel
    from meta_dataset.learners import metric_learners  # pylint: disable=import-outside-toplevel
    from meta_dataset.models import functional_backbones  # pylint: disable=import-outside-toplevel

    # The official CTX config's batch norm (crosstransformer_config.gin); no weight decay, which
    # only adds a regularization loss.
    gin.bind_parameter("bn.use_ema", True)
    gin.bind_parameter("four_layer_convnet.weight_decay", 0.0)
    return {
        training: metric_learners.CrossTransformerLearner(
            is_training=training, logit_dim=len(set(SUPPORT_LABELS)),
            transductive_batch_norm=False, backprop_through_moments=True,
            embedding_fn=functional_backbones.four_layer_convnet,
            input_shape=[image_size, image_size, 3], query_dim=QUERY_DIM, val_dim=VAL_DIM,
            rematerialize=True)
        for training in (False, True)}


def _episode(tf, providers, support, query):
    # Labels of unknown static length, as from the official pipeline: the CTX head's while
    # loop relies on shapes known only at run time.
    def labels(values, dtype):
        return tf.placeholder_with_default(tf.constant(values, dtype), [None])

    return providers.Episode(
        support_images=support, query_images=query,
        support_labels=labels(SUPPORT_LABELS, tf.int32),
        query_labels=labels(QUERY_LABELS, tf.int32),
        support_class_ids=labels(SUPPORT_LABELS, tf.int64) + 10,
        query_class_ids=labels(QUERY_LABELS, tf.int64) + 10)


def _draw_batch_norm_parameters(tf, session, rng):
    """Scales of both signs and offsets around 0 for every official batch norm."""
    for variable in tf.global_variables():
        name = variable.op.name
        shape = variable.shape.as_list()
        if name.endswith("/batch_norm/scale"):
            value = rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)
        elif name.endswith("/batch_norm/offset"):
            value = rng.normal(scale=0.2, size=shape)
        else:
            continue
        variable.load(value.astype(np.float32), session)


def make(output_dir, image_size, seed, warmup_episodes):
    import tensorflow.compat.v1 as tf  # pylint: disable=import-outside-toplevel
    from meta_dataset.data import providers  # pylint: disable=import-outside-toplevel

    tf.disable_v2_behavior()  # the official code builds TF1 graphs
    rng = np.random.RandomState(seed)
    support_pixels = _images(rng, len(SUPPORT_LABELS), image_size)
    query_pixels = _images(rng, len(QUERY_LABELS), image_size)
    shape = [None, image_size, image_size, 3]
    with tf.Graph().as_default():
        tf.set_random_seed(seed)  # the official initializers draw the same kernels each run
        support = tf.placeholder(tf.float32, shape)
        query = tf.placeholder(tf.float32, shape)
        episode = _episode(tf, providers, support, query)
        learners = _learners(tf, image_size)
        logits = {training: learner.forward_pass(episode)
                  for training, learner in learners.items()}
        ema_updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
        global_step = tf.train.get_or_create_global_step()
        variables = [v for v in tf.global_variables() if "replica_" not in v.name]
        saver = tf.train.Saver(var_list=variables)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            _draw_batch_norm_parameters(tf, session, rng)
            for _ in range(warmup_episodes):  # the official moving-average update
                session.run(ema_updates, {
                    support: _scaled(_images(rng, len(SUPPORT_LABELS), image_size)),
                    query: _scaled(_images(rng, len(QUERY_LABELS), image_size))})
            global_step.load(warmup_episodes, session)
            feed = {support: _scaled(support_pixels), query: _scaled(query_pixels)}
            # Without the update ops: the saved moving averages are the ones both passes saw.
            values = session.run({"eval": logits[False], "train": logits[True]}, feed)
            staging = pathlib.Path(tempfile.mkdtemp(prefix=".official_ckpt_",
                                                    dir=output_dir.parent))
            saver.save(session, str(staging / CHECKPOINT_NAME), write_meta_graph=False,
                       write_state=False)
        names = sorted(v.op.name for v in variables)
    np.savez(staging / "episode.npz", support_pixels=support_pixels,
             support_labels=np.asarray(SUPPORT_LABELS, np.int32), query_pixels=query_pixels,
             query_labels=np.asarray(QUERY_LABELS, np.int32))
    np.savez(staging / "logits.npz", eval=values["eval"], train=values["train"])
    checkout, commit, dirty = _official_commit()
    provenance = {
        "made_by": "tools/make_official_checkpoint.py",
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "official_code": {"repository": "google-research/meta-dataset", "commit": commit,
                          "local_changes_in_meta_dataset": dirty, "checkout": checkout},
        "tensorflow": tf.__version__, "numpy": np.__version__,
        "python": platform.python_version(),
        "learner": {"class": "meta_dataset.learners.metric_learners.CrossTransformerLearner",
                    "embedding_fn": "four_layer_convnet", "query_dim": QUERY_DIM,
                    "val_dim": VAL_DIM, "rematerialize": True, "bn.use_ema": True,
                    "transductive_batch_norm": False},
        "image_size": image_size, "seed": seed, "warmup_episodes": warmup_episodes,
        "checkpoint": CHECKPOINT_NAME, "global_step": warmup_episodes, "variables": names,
        "logits": {"eval": "is_training=False (support normalized with the moving averages)",
                   "train": "is_training=True (support normalized with its own moments)"},
    }
    (staging / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    (staging / "README.md").write_text(README.format(commit=commit, tf=tf.__version__))
    staging.chmod(0o755)
    if output_dir.exists():
        shutil.rmtree(output_dir)
    staging.rename(output_dir)
    return output_dir


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default=str(DEFAULT_OUTPUT))
    parser.add_argument("--image_size", type=int, default=48)
    parser.add_argument("--seed", type=int, default=20240524)
    parser.add_argument("--warmup_episodes", type=int, default=5)
    args = parser.parse_args()
    output_dir = pathlib.Path(args.output_dir).resolve()
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    written = make(output_dir, args.image_size, args.seed, args.warmup_episodes)
    for path in sorted(written.iterdir()):
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
