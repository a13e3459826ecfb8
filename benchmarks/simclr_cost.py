"""Cost of the SimCLR episode augmentation on CPU.

Times ``simclr_augment`` on a support set (no blur) and on its query copies (blurred), inside a
``tf.function`` as ``tf.data`` would run it, for several image sizes.

    python benchmarks/simclr_cost.py [--sizes 84 224] [--num_support 500] [--num_query 500]
"""

import argparse
import os
import time

import tensorflow as tf

from ctx_tf.data.simclr import augment


def _time(fn, repeats):
    """(best wall seconds, mean wall seconds, mean process CPU seconds) over `repeats` runs."""
    fn()  # trace + warm up
    best = float("inf")
    total = 0.0
    cpu = 0.0
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        elapsed = time.perf_counter() - start
        cpu += time.process_time() - start_cpu
        best = min(best, elapsed)
        total += elapsed
    return best, total / repeats, cpu / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[84, 224])
    parser.add_argument("--num_support", type=int, default=500)
    parser.add_argument("--num_query", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()}")
    for size in args.sizes:
        support = tf.random.uniform([args.num_support, size, size, 3], -1.0, 1.0, seed=1)
        query = support[: args.num_query]

        @tf.function
        def augment_support(images):
            return augment.simclr_augment(images, blur=False, seed=[1, 2])

        @tf.function
        def augment_query(images):
            return augment.simclr_augment(images, blur=True, seed=[3, 4])

        @tf.function
        def blur_only(images):
            return augment.random_blur(images, seed=[5, 6])

        rows = [
            (f"support {args.num_support} (no blur)", lambda: augment_support(support).numpy()),
            (f"query {args.num_query} (blur)", lambda: augment_query(query).numpy()),
            (f"  of which blur {args.num_query}", lambda: blur_only(query).numpy()),
        ]
        for name, fn in rows:
            best, mean, cpu = _time(fn, args.repeats)
            print(
                f"{size:4d}px  {name:28s} wall best {best:7.3f} s  mean {mean:7.3f} s  "
                f"CPU {cpu:7.3f} s"
            )


if __name__ == "__main__":
    main()
