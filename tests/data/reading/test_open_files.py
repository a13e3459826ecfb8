"""`OpenFiles`: a bounded pool of open record files, read by offset, from several threads."""

import os
import threading

import numpy as np
import pytest
import tensorflow as tf

from ctx_tf.data.reading.open_files import OpenFiles


def open_descriptors():
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def files(tmp_path, rng_seed):
    rng = np.random.RandomState(rng_seed)
    paths = []
    for i in range(12):
        path = tmp_path / f"{i}.bin"
        path.write_bytes(rng.bytes(int(rng.randint(100, 3000))))
        paths.append(str(path))
    return paths


def test_at_most_max_open_files_least_recently_used_closed_first(files):
    pool = OpenFiles(max_open=3)
    before = open_descriptors()
    for path in files:
        assert pool.read(path, 5, 10) == open(path, "rb").read()[5:15]
        assert len(pool) <= 3 and open_descriptors() - before <= 3
    pool.read(files[10], 0, 1)  # most recent now; files[9] is the least recent
    pool.read(files[0], 0, 1)  # reopened: closes files[9], keeps files[10] and files[11]
    assert pool.opened == len(files) + 1
    pool.read(files[10], 0, 1)
    pool.read(files[11], 0, 1)
    assert pool.opened == len(files) + 1
    pool.max_open = 1
    assert len(pool) == 1
    pool.close_all()
    assert len(pool) == 0 and open_descriptors() == before


def test_reads_by_offset_agree_with_the_file_from_many_threads(files, rng_seed):
    pool = OpenFiles(max_open=4)
    contents = [open(p, "rb").read() for p in files]
    failures = []

    def worker(seed):
        rng = np.random.RandomState(seed)
        for _ in range(300):
            k = int(rng.randint(len(files)))
            start = int(rng.randint(len(contents[k])))
            size = int(rng.randint(1, 200))
            if pool.read(files[k], start, size) != contents[k][start:start + size]:
                failures.append((k, start, size))

    threads = [threading.Thread(target=worker, args=(rng_seed + t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures and len(pool) <= 4
    assert pool.size(files[3]) == len(contents[3])


def test_remote_files_through_tf_gfile(tmp_path):
    remote = f"ram://{tmp_path.name}/pool.bin"
    with tf.io.gfile.GFile(remote, "wb") as f:
        f.write(bytes(range(256)) * 4)
    pool = OpenFiles(max_open=2)
    assert pool.read(remote, 250, 10) == bytes(range(250, 256)) + bytes(range(4))
    assert pool.size(remote) == 1024
    assert pool.read(remote, 1020, 10) == bytes(range(252, 256))  # short at the end


def test_errors_are_the_operating_systems(tmp_path):
    pool = OpenFiles()
    with pytest.raises(FileNotFoundError):
        pool.read(str(tmp_path / "absent.bin"), 0, 1)
    with pytest.raises(IsADirectoryError):
        pool.read(str(tmp_path), 0, 1)
    with pytest.raises(ValueError, match="max_open >= 1"):
        OpenFiles(max_open=0)
