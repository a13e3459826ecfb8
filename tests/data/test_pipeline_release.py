"""Abandoned episode pipelines are released without a hang.

TensorFlow runs the episode generator asynchronously (prefetch, parallelized maps, and the
generator's finalization on one of its threads); deleting an iterator while such a call waits
for the interpreter lock deadlocks. `pipeline.iterate` stops the generators, reads the
iterator to its end and lets the finalization run before the iterator is deleted. A child
process builds and abandons 50 pipelines (after some episodes or a damaged file's error;
half deleted at once, half at the end as the commands do) and must exit on its own, quietly.
Before the fix, `ctx_tf.evaluate` on a truncated class file hung in about one run in seven,
and this child hung in one or two runs of three when only the drain (no finalization pause)
was in place.
"""

import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

from ctx_tf.data import pipeline, sampling
from ctx_tf.data.dataset_spec import Split
from tests.data.reading.test_episode_reader import write_source

CHILD = textwrap.dedent("""
    import sys
    from ctx_tf.data import dataset_spec, pipeline, sampling
    from ctx_tf.data.dataset_spec import Split
    from ctx_tf.errors import UserError

    spec = dataset_spec.load_dataset_spec(sys.argv[1])
    damaged = dataset_spec.load_dataset_spec(sys.argv[2])
    config = sampling.EpisodeDescriptionConfig(num_ways=5, num_support=2, num_query=2)
    errors, kept = 0, []
    for k in range(int(sys.argv[3])):
        for source in (spec, damaged):
            dataset = pipeline.make_one_source_episode_pipeline(
                source, False, False, Split.TRAIN, config, shuffle_buffer_size=100,
                image_size=8, seed=k)
            episodes = pipeline.iterate(dataset, [source], Split.TRAIN)
            try:
                for _ in range(3):
                    next(episodes)
            except UserError:
                errors += 1
            if k % 2:
                del episodes, dataset  # abandoned with episodes in flight
            else:
                kept.append(episodes)  # left for the end of the process
    print("released", errors, flush=True)
    if sys.argv[4] == "exit":  # as the commands end (ctx_tf.cli)
        del kept
        import gc
        gc.collect()
""")


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("records")
    spec = write_source(root, "good", [8] * 12, (12, 0, 0))
    damaged = write_source(root, "damaged", [8] * 12, (12, 0, 0))
    path = damaged.record_path(0)
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    return spec, damaged


@pytest.mark.slow
def test_abandoned_pipelines_do_not_hang_the_process(sources):
    spec, damaged = sources
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, spec.path, damaged.path, "25", "exit"],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[0] == "released"
    assert int(proc.stdout.split()[1]) > 0  # the damaged source did raise
    assert "GeneratorDataset" not in proc.stderr, proc.stderr[-3000:]


def test_a_released_pipeline_can_be_iterated_again(sources):
    spec, _ = sources
    config = sampling.EpisodeDescriptionConfig(num_ways=5, num_support=2, num_query=2)
    dataset = pipeline.make_one_source_episode_pipeline(
        spec, False, False, Split.TRAIN, config, shuffle_buffer_size=100, image_size=8, seed=1)
    for _ in range(2):
        episodes = pipeline.iterate(dataset, [spec], Split.TRAIN)
        ids = [next(episodes)[0].support_class_ids.numpy().tolist() for _ in range(2)]
        assert len(ids) == 2 and all(len(i) == 10 for i in ids)
        episodes.close()


def test_pipelines_without_episode_generators_are_not_drained():
    # A batch pipeline repeats forever: releasing it must not read it further.
    produced = tf.Variable(0, dtype=tf.int64)
    dataset = tf.data.Dataset.range(10**9).map(lambda x: produced.assign_add(1))
    elements = pipeline.iterate(dataset, [])
    assert int(next(elements)) >= 1
    elements.close()
    assert int(produced.numpy()) < 100
