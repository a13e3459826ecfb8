"""Episode pipeline throughput on ImageNet-like records (a script that prints a table).

Writes (once, cached) a source of `--num_classes` classes x `--images_per_class` JPEGs of
about 400x350 px with the project writer, then times variable-way / variable-shot episodes
(the official defaults) through:

  id stream      the numpy sampler + the Python flush|support|query id generator alone
  read           + the episode reader (records read by offset in the generator), tf.data
  StringDecoder  + parsing the Examples (no image decoding)
  ImageDecoder   + JPEG decoding, align_corners resize to 84 / 224, scaling

each with the tf.data private thread pool limited to 1 and to 2 threads.

  python benchmarks/pipeline_throughput.py [--episodes 12] [--cache_dir /tmp/...]

With `--startup RECORDS_DIR` (e.g. official-converter Omniglot records) it times instead
the start-up of the episode pipeline of that source: from the pipeline call to the first
episode, once per split of `--startup_splits`.
"""

import argparse
import os
import platform
import time

import gin
import numpy as np
import tensorflow as tf
from PIL import Image

from ctx_tf.data import dataset_spec as dataset_spec_lib
from ctx_tf.data import pipeline
from ctx_tf.data import sampling
from ctx_tf.data.config import DataConfig
from ctx_tf.data.dataset_spec import Split
from ctx_tf.data.reading import decoder as decoder_lib
from ctx_tf.data.reading import episode_reader as reader_lib
from ctx_tf.data.writing.arrays import write_source_from_arrays


# Shared grain so that generating thousands of images stays cheap.
_GRAIN = np.random.RandomState(0).normal(0, 12, size=[480, 560, 3]).astype(np.float32)


class _SyntheticPhotos:
    """Lazily generated smooth colour images of varied size (JPEG sizes like photos)."""

    def __init__(self, class_index, count):
        self.class_index, self.count = class_index, count

    def __len__(self):
        return self.count

    def __getitem__(self, i):
        if not 0 <= i < self.count:
            raise IndexError(i)
        rng = np.random.RandomState(self.class_index * 100003 + i)
        h, w = rng.randint(300, 420), rng.randint(330, 480)
        coarse = rng.randint(0, 256, size=[h // 16 + 2, w // 16 + 2, 3]).astype(np.uint8)
        image = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), np.float32)
        y, x = rng.randint(0, 480 - h), rng.randint(0, 560 - w)
        image += _GRAIN[y:y + h, x:x + w]
        return np.clip(image, 0, 255).astype(np.uint8)

    def __iter__(self):
        return (self[i] for i in range(self.count))


def make_records(cache_dir, num_classes, images_per_class):
    name = f"bench_{num_classes}x{images_per_class}"
    directory = os.path.join(cache_dir, name)
    if not os.path.exists(os.path.join(directory, "dataset_spec.json")):
        print(f"writing {num_classes} x {images_per_class} JPEGs to {directory} (once) ...",
              flush=True)
        start = time.time()
        write_source_from_arrays(
            cache_dir, name, [_SyntheticPhotos(c, images_per_class) for c in range(num_classes)],
            splits=(num_classes, 0, 0), overwrite=True)
        print(f"  done in {time.time() - start:.0f} s", flush=True)
    return dataset_spec_lib.load_dataset_spec(directory)


def _with_threads(dataset, threads):
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    return dataset.with_options(options)


def _time(iterator, num_episodes, count_images):
    next(iterator)  # warm up: graph building, first shuffle buffers
    next(iterator)
    images, start = 0, time.perf_counter()
    for _ in range(num_episodes):
        images += count_images(next(iterator))
    elapsed = time.perf_counter() - start
    return num_episodes / elapsed, images / elapsed


def _episode_images(element):
    episode, _ = element
    return int(tf.shape(episode.support_labels)[0] + tf.shape(episode.query_labels)[0])


def _raw_images(flush_size):
    def count(element):  # support + query records (the flushed ones are read but not used)
        return int(tf.reduce_sum(tf.cast(element[1][flush_size:] >= 0, tf.int32)))
    return count


def startup(directory, splits, image_size=84):
    """Seconds from `make_one_source_episode_pipeline` to its first episode, per split."""
    spec = dataset_spec_lib.load_dataset_spec(directory)
    data_config = DataConfig()
    print(f"TensorFlow {tf.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs; source {spec.name} ({directory})")
    for split in splits:
        load = os.getloadavg()[0]
        start = time.perf_counter()
        dataset = pipeline.make_one_source_episode_pipeline(
            spec, *dataset_spec_lib.use_ontologies(spec.name), split,
            sampling.EpisodeDescriptionConfig(), image_size=image_size,
            shuffle_buffer_size=data_config.shuffle_buffer_size,
            read_buffer_size_bytes=data_config.read_buffer_size_bytes,
            num_prefetch=data_config.num_prefetch, seed=0)
        built = time.perf_counter() - start
        episode, _ = next(iter(dataset))
        first = time.perf_counter() - start
        print(f"{split.name:>5}: {len(spec.get_classes(split))} classes, pipeline built in "
              f"{built:.1f} s, first episode ({len(episode.support_labels)} support images) "
              f"after {first:.1f} s; load average {load:.1f} -> {os.getloadavg()[0]:.1f}",
              flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--startup", default=None,
                        help="a source's records directory: time the first episode instead")
    parser.add_argument("--startup_splits", default="TEST,TRAIN")
    parser.add_argument("--cache_dir", default="/tmp/ctx_tf_pipeline_benchmark")
    parser.add_argument("--num_classes", type=int, default=60)
    parser.add_argument("--images_per_class", type=int, default=300)
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--sizes", default="84,224")
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    if args.startup:
        startup(args.startup, [Split[s] for s in args.startup_splits.split(",")])
        return

    spec = make_records(args.cache_dir, args.num_classes, args.images_per_class)
    data_config = DataConfig()
    episode_config = sampling.EpisodeDescriptionConfig()
    threads = [int(t) for t in args.threads.split(",")]
    rows = []

    # 1. Sampler + id stream alone (pure Python).
    sampler = sampling.EpisodeDescriptionSampler(spec, Split.TRAIN, episode_config, rng=0)
    stream = reader_lib.EpisodeIdStream(
        sampling.DescriptionSource(sampler),
        [spec.num_images(c) for c in spec.get_classes(Split.TRAIN)],
        sampler.compute_chunk_sizes())
    n, start, images = 2000, time.perf_counter(), 0
    for _ in range(n):
        pairs = stream.next_episode()
        images += sum(s + q for _, s, q in stream.last_description)
    elapsed = time.perf_counter() - start
    rows.append(("sampler + id stream (Python)", "-", "-", n / elapsed, images / elapsed))
    del pairs

    common = dict(shuffle_buffer_size=data_config.shuffle_buffer_size,
                  read_buffer_size_bytes=data_config.read_buffer_size_bytes,
                  num_prefetch=data_config.num_prefetch, seed=0)

    # 2. Reading only: the raw fixed-size episodes (2000 record strings each).
    for t in threads:
        sampler = sampling.EpisodeDescriptionSampler(spec, Split.TRAIN, episode_config, rng=0)
        raw = reader_lib.EpisodeReader(
            spec, Split.TRAIN, data_config.shuffle_buffer_size
        ).episode_dataset(sampling.DescriptionSource(sampler), sampler.compute_chunk_sizes())
        eps, ips = _time(iter(_with_threads(raw, t)), args.episodes,
                         _raw_images(sampler.compute_chunk_sizes()[0]))
        rows.append(("+ read records (tf.data)", "-", t, eps, ips))

    # 3. Parsing only (StringDecoder), 4. full decoding (ImageDecoder).
    for label, decoder, sizes in (
            ("+ parse (StringDecoder)", decoder_lib.StringDecoder(), [84]),
            ("+ decode (ImageDecoder)", None, [int(s) for s in args.sizes.split(",")])):
        for size in sizes:
            for t in threads:
                with gin.unlock_config():
                    gin.clear_config()
                    if decoder is not None:
                        gin.bind_parameter("process_episode.support_decoder", decoder)
                        gin.bind_parameter("process_episode.query_decoder", decoder)
                dataset = pipeline.make_one_source_episode_pipeline(
                    spec, False, False, Split.TRAIN, episode_config, image_size=size,
                    **common)
                eps, ips = _time(iter(_with_threads(dataset, t)), args.episodes,
                                 _episode_images)
                rows.append((label, size if decoder is None else "-", t, eps, ips))
    gin.clear_config()

    print()
    print(f"TensorFlow {tf.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"source: {spec.num_classes} classes x {args.images_per_class} JPEGs (~400x350 px), "
          f"variable way/shot episodes (official defaults), {args.episodes} timed episodes "
          f"per row; tf.data threads = private thread pool size; images = support + query")
    header = f"| {'stage':<30} | {'size':>4} | {'tf.data threads':>15} | " \
             f"{'episodes/s':>10} | {'images/s':>9} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for stage, size, t, eps, ips in rows:
        print(f"| {stage:<30} | {size!s:>4} | {t!s:>15} | {eps:>10.2f} | {ips:>9.0f} |")


if __name__ == "__main__":
    main()
