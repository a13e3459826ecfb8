"""The unmodified official Meta-Dataset trainer's first updates: train_run.py's official row.

    python benchmarks/train_run.py --records_root_dir=<root with omniglot/> \
        --official_python=<python> --official_path=<meta-dataset>:<simclr parent>:<task_adaptation>

runs this file with `<python>` (an environment with the official code's dependencies:
TensorFlow with `tf.compat.v1`, gin-config, tensorflow-probability, tensorflow-addons,
tensorflow-hub, tensorflow-datasets) and `--official_path` as its PYTHONPATH (a checkout of
google-research/meta-dataset, the parent folder of a checkout of google-research/simclr named
`simclr`, and a checkout of google-research/task_adaptation). It imports nothing from ctx_tf
(`machine.py` beside it is standard library and TensorFlow only).
The official setup.py caps Python below 3.10, but on its import path (not installed) the code
runs on Python 3.11 in an environment such as:

    python -m venv official && official/bin/pip install "tensorflow==2.15.1" \
        "tensorflow-probability==0.23.0" "tensorflow-addons==0.23.0" tensorflow-hub \
        "tensorflow-datasets==4.9.3" "tensorflow-metadata<1.16" "protobuf<5" \
        "googleapis-common-protos<1.64" gin-config six "scipy<1.12" "numpy<1.24" pillow

(numpy below 1.24: the official DAG sampler hands `RandomState.choice` a ragged list of
lists, which newer numpy refuses.)

What runs is the official `train.py` main and its `Trainer` training loop with the
CrossTransformer learner on Omniglot TRAIN episodes of the variable-way/shot configuration,
84 px, the four-layer convnet, `Trainer.distribute = False` (as train_run.py's ctx_tf rows).
Changed from outside, not in the code:
- summaries are not written (with the per-update log that the timing reads, the loop would
  run the train and valid graphs once more for every summary);
- the TRAIN episode sampler draws from a RandomState of `--sampler_seed`, so that it draws
  the same episode descriptions as ctx_tf's pipeline (train_run.py passes the seed its ctx_tf
  rows' sampler gets);
- `Learner.embedding_fn` is bound to the function (the official CrossTransformer config names
  it as a string, which the learner cannot call), `Trainer.num_eval_episodes = 1` (the loop
  validates once before its first update) and checkpoints are saved only at step 0.
An update's end is the time of the trainer's own "Update N." log line. Prints one line
`RESULT <json>` like train_run.py's ctx_tf children; peak memory is the process's `VmHWM`, the
matmul rate is timed in a graph session (the trainer's mode) after the updates.
"""

import time

START = time.time()  # before TensorFlow is imported, as train_run.py's children

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile

import machine  # this folder is the script's sys.path[0]

GIN = """
include 'meta_dataset/learn/gin/setups/data_config.gin'
include 'meta_dataset/learn/gin/setups/trainer_config.gin'
include 'meta_dataset/learn/gin/setups/variable_way_and_shot.gin'
include 'meta_dataset/learn/gin/learners/crosstransformer_config.gin'
benchmark.train_datasets = 'omniglot'
benchmark.eval_datasets = 'omniglot'
Trainer.data_config = @DataConfig()
Trainer.train_episode_config = @train/EpisodeDescriptionConfig()
Trainer.eval_episode_config = @EpisodeDescriptionConfig()
Learner.embedding_fn = @four_layer_convnet
Trainer.experiment_name = 'anchor'
Trainer.distribute = False
Trainer.num_updates = {num_updates}
Trainer.num_eval_episodes = 1
Trainer.log_every = 1
Trainer.checkpoint_every = 100000000
Trainer.validate_every = 100000000
"""


class UpdateTimes(logging.Filter):
    """Records the time of each "Update N." line the trainer logs, and of the first
    validation's start and end lines."""

    def __init__(self):
        super().__init__()
        self.times = {}
        self.validation = {}

    def filter(self, record):
        message = str(record.msg)
        if message.startswith("Update "):
            self.times[int(message.split()[1].rstrip("."))] = record.created
        for key, start in (("start", "Performing evaluation"), ("end", "Finished evaluation")):
            if message.startswith(start):
                self.validation.setdefault(key, record.created)
        return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records_root_dir", required=True)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--sampler_seed", type=int, default=None)
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf
    import meta_dataset
    from absl import app
    from meta_dataset import train, trainer
    from meta_dataset.data import learning_spec, sampling

    code_root = os.path.dirname(os.path.dirname(os.path.abspath(meta_dataset.__file__)))
    os.chdir(code_root)  # the configs include each other by paths relative to the checkout

    create_writer = trainer.Trainer.create_summary_writer

    def without_writer(self):
        create_writer(self)
        self.summary_writer = None

    trainer.Trainer.create_summary_writer = without_writer

    sizes = {}  # id(sampler) -> [(ways, support, query)] of its TRAIN descriptions, in order
    sampler_init = sampling.EpisodeDescriptionSampler.__init__
    sample = sampling.EpisodeDescriptionSampler.sample_episode_description

    def seeded_init(self, *a, **k):
        sampler_init(self, *a, **k)
        if self.split == learning_spec.Split.TRAIN and args.sampler_seed is not None:
            self._rng = np.random.RandomState(args.sampler_seed)

    def recorded_sample(self):
        description = sample(self)
        if self.split == learning_spec.Split.TRAIN:
            sizes.setdefault(id(self), []).append(
                (len(description), int(sum(d[1] for d in description)),
                 int(sum(d[2] for d in description))))
        return description

    sampling.EpisodeDescriptionSampler.__init__ = seeded_init
    sampling.EpisodeDescriptionSampler.sample_episode_description = recorded_sample

    updates = UpdateTimes()
    logging.getLogger("absl").addFilter(updates)
    work = tempfile.mkdtemp(prefix="official_trainer_")
    config = os.path.join(work, "anchor.gin")
    with open(config, "w") as f:
        f.write(GIN.format(num_updates=args.steps + 1))

    def timed_main(argv):
        train.main(argv)
        first, last = updates.times.get(1), updates.times.get(args.steps + 1)
        if first is None or last is None:
            sys.exit(f"the trainer logged updates {sorted(updates.times)}")
        drawn = max(sizes.values(), key=len) if sizes else []
        timed = drawn[1:args.steps + 1]
        ways, support, query = (float(np.mean(x)) for x in zip(*timed)) if timed else (0,) * 3
        print("RESULT " + json.dumps(dict(
            updates_per_s=args.steps / (last - first), first_step_s=first - START,
            step0_validation_s=updates.validation.get("end", 0) - updates.validation.get(
                "start", 0),
            peak_mb=machine.Peak.peak_rss_bytes() / 2 ** 20,
            matmul_gflops=machine.matmul_gflops(), tf_version=tf.__version__, mean_way=ways,
            mean_support=support, mean_query=query, sizes=drawn[:args.steps + 1])),
            flush=True)

    try:
        app.run(timed_main, argv=[
            sys.argv[0], f"--records_root_dir={args.records_root_dir}", f"--gin_config={config}",
            f"--train_checkpoint_dir={os.path.join(work, 'checkpoints')}",
            f"--summary_dir={os.path.join(work, 'summaries')}", "--verbosity=0"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
