"""What every benchmark figure is printed with: the machine, and how busy it was.

`describe()` names the CPU, its bf16 support (AVX-512 BF16, AMX) and logical cores, the
TensorFlow and Python versions; `matmul_gflops()` is the in-run float32 matmul rate (the
machine's speed at that moment: it drifts with the load); `Peak` follows a process's most
open file descriptors and its peak resident memory. Standard library and TensorFlow only (no
ctx_tf), so the official code's environment can import it too.
"""

import json
import os
import platform
import resource
import threading
import time


def _cpuinfo_field(name):
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(name):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_model():
    return _cpuinfo_field("model name") or platform.processor() or "unknown CPU"


def bf16_support():
    """The CPU's bfloat16 instructions, e.g. 'AVX-512 BF16 + AMX' or 'none (AVX2 only)'."""
    flags = set(_cpuinfo_field("flags").split())
    found = [label for flag, label in (("avx512_bf16", "AVX-512 BF16"), ("amx_bf16", "AMX"))
             if flag in flags]
    if found:
        return " + ".join(found)
    return "none" + (" (AVX2 only)" if "avx2" in flags and "avx512f" not in flags else "")


def describe():
    """One line naming the machine and the software versions."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    return (f"{cpu_model()}, {os.cpu_count()} logical cores, bf16: {bf16_support()}; "
            f"TensorFlow {tf.__version__}, Python {platform.python_version()}")


def matmul_gflops(n=2048, repeats=3):
    """GFLOP/s of an n^3 float32 matmul (best of `repeats` after a warm-up), timed now; in a
    TF1 graph session when eager execution is off (the official trainer's mode)."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    if tf.executing_eagerly():
        a = tf.random.normal([n, n])
        matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, a)))
        return _best_rate(lambda: matmul().numpy(), n, repeats)
    v1 = tf.compat.v1
    with tf.Graph().as_default(), v1.Session() as sess:
        # A variable: the graph optimizer would fold a product of constants.
        a = v1.Variable(np.random.RandomState(0).randn(n, n).astype(np.float32))
        total = tf.reduce_sum(tf.matmul(a, a))
        sess.run(a.initializer)
        return _best_rate(lambda: sess.run(total), n, repeats)


def _best_rate(run, n, repeats):
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def open_descriptors():
    return len(os.listdir("/proc/self/fd"))


class Peak:
    """Samples this process's open file descriptors every `interval` seconds (from a thread,
    so that peaks between the caller's own checks are seen); `peak_rss_bytes` is the kernel's
    high-water mark of the process's resident memory."""

    def __init__(self, interval=0.02):
        self.most_descriptors = open_descriptors()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval):
        while not self._stop.wait(interval):
            self.sample()

    def sample(self):
        try:
            self.most_descriptors = max(self.most_descriptors, open_descriptors())
        except OSError:
            pass

    def stop(self):
        self._stop.set()
        self._thread.join()
        self.sample()

    @staticmethod
    def peak_rss_bytes():
        """The high-water mark of this process's resident memory (`VmHWM`: unlike
        `ru_maxrss`, it does not carry over the parent's peak through fork and exec)."""
        return _status_bytes("VmHWM")

    @staticmethod
    def rss_bytes():
        return _status_bytes("VmRSS")


def _status_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {field} in /proc/self/status")


def measure_episodes(job, build):
    """Prints `RESULT <json>` of one pipeline row: `build()` (called now) returns an iterator of
    `(support, query)` sizes; seconds from the call to the first episode, then episodes/s and
    images/s over `job["episodes"]` more, the peak resident memory (and the memory before the
    call), the most open file descriptors."""
    baseline = Peak.rss_bytes()
    peak = Peak()
    start = time.perf_counter()
    episodes = build()
    next(episodes)
    first = time.perf_counter() - start
    images, start = 0, time.perf_counter()
    for _ in range(job["episodes"]):
        support, query = next(episodes)
        images += support + query
    elapsed = time.perf_counter() - start
    peak.stop()
    print("RESULT " + json.dumps(dict(
        first_s=first, episodes_per_s=job["episodes"] / elapsed, images_per_s=images / elapsed,
        peak_rss=Peak.peak_rss_bytes(), baseline_rss=baseline,
        most_descriptors=peak.most_descriptors)), flush=True)


def set_open_file_limit(limit):
    """Lowers this process's soft and hard open-file limit (None: unchanged)."""
    if limit:
        resource.setrlimit(resource.RLIMIT_NOFILE, (int(limit), int(limit)))
