"""The reader's memory and open files do not grow with the classes it reads.

Children processes (so that the open-file limit and the peak memory are their own) read
episodes and batches that touch every class of a source: with the open-file limit below the
number of classes they finish; an exhausted limit (EMFILE) is named as what it is; and, slow-marked,
reading hundreds of classes of large records leaves the memory flat.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from ctx_tf.data.writing import synthetic
from tests.conftest import REPO_ROOT

CHILD = textwrap.dedent("""
    import json, os, resource, sys
    limit = int(sys.argv[3])
    if limit:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    from ctx_tf.data import dataset_spec, pipeline, sampling
    from ctx_tf.data.dataset_spec import Split
    from ctx_tf.data.reading.open_files import OPEN_FILES

    def descriptors():
        return len(os.listdir("/proc/self/fd"))

    spec = dataset_spec.load_dataset_spec(sys.argv[1])
    mode, num = sys.argv[2], int(sys.argv[4])
    config = sampling.EpisodeDescriptionConfig(min_ways=5, max_ways_upper_bound=50)
    if mode == "fixed":  # small episodes, each of many classes
        config = sampling.EpisodeDescriptionConfig(num_ways=20, num_support=2, num_query=2)
    if mode == "batches":
        dataset = pipeline.make_one_source_batch_pipeline(
            spec, Split.TRAIN, 64, shuffle_buffer_size=100, image_size=8, seed=1)
    else:
        dataset = pipeline.make_one_source_episode_pipeline(
            spec, False, False, Split.TRAIN, config, shuffle_buffer_size=1000, image_size=8,
            seed=1)
    classes, most, rss, hold = set(), 0, [], []
    for element, _ in pipeline.iterate(dataset.take(num), [spec], Split.TRAIN):
        if mode == "exhaust" and not hold:
            # From now on opening a class file fails as with an exhausted open-file limit
            # (EMFILE); the real limit is not exhausted, so that nothing else in the process
            # (a lazy import, a TensorFlow thread) fails first.
            import errno
            from ctx_tf.data.reading import open_files
            OPEN_FILES.close_all()

            def refuse(path, *args, **kwargs):
                raise OSError(errno.EMFILE, os.strerror(errno.EMFILE), path)

            open_files.os.open = refuse
            hold.append(refuse)
        ids = element[1] if mode == "batches" else element.support_class_ids
        classes.update(int(c) for c in ids.numpy())
        if not hold:
            most = max(most, descriptors())
            with open("/proc/self/statm") as statm:
                rss.append(int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
    print("RESULT " + json.dumps(dict(classes=len(classes), most_descriptors=most, rss=rss)))
""")


def run_child(tmp_path, directory, mode, limit, num, timeout=300):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, str(script), str(directory), mode, str(limit),
                             str(num)], capture_output=True, text=True, timeout=timeout,
                            env=env, cwd=tmp_path)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    return result, (json.loads(lines[-1][7:]) if lines else None)


@pytest.fixture(scope="module")
def many_classes(tmp_path_factory):
    return synthetic.write_flat_source(tmp_path_factory.mktemp("records"), "many",
                                       (150, 0, 0), 6, image_size=8)


@pytest.mark.parametrize("mode, num", [("episodes", 30), ("batches", 16)])
def test_more_classes_than_the_open_file_limit(tmp_path, many_classes, mode, num):
    limit = 120  # TensorFlow itself holds some 60 descriptors; the source has 150 classes
    result, out = run_child(tmp_path, many_classes, mode, limit, num)
    assert result.returncode == 0, result.stderr[-3000:]
    assert out["classes"] > limit, out
    assert out["most_descriptors"] < limit


def test_an_exhausted_open_file_limit_is_named_as_such(tmp_path, many_classes):
    result, out = run_child(tmp_path, many_classes, "exhaust", 0, 6)
    assert result.returncode != 0 and out is None
    message = result.stderr.strip().splitlines()[-1]
    assert "RecordFileError" in message, result.stderr[-3000:]
    assert "many/" in message and ".tfrecords (class id" in message
    assert "Too many open files" in message and "ulimit -n" in message
    assert "damaged" not in message and "--check" not in message


@pytest.mark.slow
def test_memory_stays_flat_over_many_classes_of_large_records(tmp_path_factory, tmp_path):
    # 240 classes x 24 records of 128 KB, 20-way 2-shot 2-query episodes (10 MB of records
    # each): a reader that kept what it read ahead (up to a shuffle buffer per class, as
    # before records were read by offset) would grow by up to 3 MB per class touched.
    directory = synthetic.write_flat_source(
        tmp_path_factory.mktemp("large"), "large", (240, 0, 0), 24, image_size=8,
        record_bytes=128_000)
    result, out = run_child(tmp_path, directory, "fixed", 0, 60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert out["classes"] >= 230
    rss = out["rss"]
    growth = max(rss[10:]) - rss[9]  # 10 episodes touch ~140 classes, 60 touch all
    assert growth < 48 * 2**20, f"resident memory grew by {growth / 2**20:.0f} MiB"
