"""The unmodified official Meta-Dataset episode pipeline: scale.py's official rows.

`benchmarks/scale.py --official_python=<python> --official_path=<meta-dataset>:...` runs this
file with `<python>` (an environment of the official code, see official_trainer.py) on the
same job as its own row: the same records, sources, split and image size. It imports nothing
from ctx_tf. The configuration is the official one, from the official gin files:
`learn/gin/setups/data_config.gin` (ImageDecoder, shuffle_buffer_size 1000,
read_buffer_size_bytes 1 MiB, num_prefetch 64) and `variable_way_and_shot.gin`; sources are
read with the official ontology choice (DAG for ILSVRC, bi-level for Omniglot), several
training sources through `make_multisource_episode_pipeline`, as the official trainer does.
Prints one line `RESULT <json>` like scale.py's own children.
"""

import json
import os
import sys

import machine  # benchmarks/ is on this child's path (scale.py puts it there)


def official_episodes(job):
    """`(support, query)` sizes of the official pipeline's episodes for `job`."""
    # pylint: disable=import-outside-toplevel
    import gin
    import meta_dataset
    from meta_dataset.data import config as config_lib
    from meta_dataset.data import dataset_spec as dataset_spec_lib
    from meta_dataset.data import learning_spec
    from meta_dataset.data import pipeline

    repo = os.path.dirname(os.path.dirname(os.path.abspath(meta_dataset.__file__)))
    os.chdir(repo)  # the official configs include each other by paths relative to the checkout
    setups = os.path.join("meta_dataset", "learn", "gin", "setups")
    gin.parse_config_files_and_bindings(
        [os.path.join(setups, "data_config.gin"),
         os.path.join(setups, "variable_way_and_shot.gin")],
        [f"DataConfig.image_height = {job['image_size']}"])
    data = config_lib.DataConfig()
    episode_config = config_lib.EpisodeDescriptionConfig()
    specs = [dataset_spec_lib.load_dataset_spec(os.path.join(job["root"], name))
             for name in job["sources"]]
    dag = [name in ("ilsvrc_2012", "ilsvrc_2012_v2") for name in job["sources"]]
    bilevel = [name == "omniglot" for name in job["sources"]]
    split = learning_spec.Split.TEST if job["kind"] == "eval" else learning_spec.Split.TRAIN
    common = dict(shuffle_buffer_size=data.shuffle_buffer_size,
                  read_buffer_size_bytes=data.read_buffer_size_bytes,
                  num_prefetch=data.num_prefetch, image_size=data.image_height)
    if len(specs) == 1:
        dataset = pipeline.make_one_source_episode_pipeline(
            specs[0], dag[0], bilevel[0], split, episode_config, **common)
    else:
        dataset = pipeline.make_multisource_episode_pipeline(
            specs, dag, bilevel, split, episode_config, **common)
    for episode, _ in dataset:
        yield int(episode[1].shape[0]), int(episode[4].shape[0])


def main():
    job = json.loads(sys.argv[sys.argv.index("--child") + 1])
    machine.set_open_file_limit(job.get("nofile"))
    import tensorflow  # noqa: F401  (loaded before the baseline: its memory is not the row's)

    machine.measure_episodes(job, lambda: official_episodes(job))


if __name__ == "__main__":
    main()
