"""The reader at the benchmark's shape: start-up, memory, open files and speed (prints tables).

    python benchmarks/scale.py [--parts all_sources,eval,memory,imagenet] [--root DIR] \
        [--official_python PY --official_path PATHS]

Writes (once, cached under --root) synthetic copies of the sources with
`ctx_tf.data.writing.synthetic` -- the official class counts, ids and spec types (ILSVRC's DAG,
Omniglot bi-level, the rest flat), generated JPEGs -- and times the pipelines on them, each row
in a child process of its own (so peak memory and open files are the row's):

  all_sources  the eight-source training pipeline of gin/setups/all.gin, built as the trainer
               builds it (TRAIN, 3,144 classes); images capped at --max_images_per_class
  eval         each of the ten sources' evaluation pipeline, as `ctx_tf.evaluate` builds it
               (TEST split, the protocol's episode configuration and seed)
  memory       one TRAIN source of N classes x --memory_images records of --memory_record_kb KB
               (N in --memory_classes), the official training data configuration; ctx_tf also
               with the open-file limit at --memory_nofile
  imagenet     ILSVRC's 712 TRAIN classes (its DAG) with records of --imagenet_record_kb KB,
               --imagenet_images per class

Every row: seconds from the pipeline call to the first episode, peak resident memory of the
process (TensorFlow's own included; `baseline` is the process before the pipeline call), the
most open file descriptors, and episodes/s and images/s (support + query) over --episodes
episodes, at --image_size px (84, the official training size). With `--official_python`
(an environment of the official code, see benchmarks/official_trainer.py) and
`--official_path`, the unmodified official pipeline reads the same records with the same
configuration in the next child (benchmarks/official_pipeline.py), in the same run.
"""

import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported
import machine  # noqa: E402  (this folder is the script's sys.path[0])

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
ALL_GIN = os.path.join(REPO, "gin", "setups", "all.gin")
EVAL_SOURCES = ("ilsvrc_2012", "omniglot", "aircraft", "cu_birds", "dtd", "quickdraw", "fungi",
                "vgg_flower", "traffic_sign", "mscoco")


# ----------------------------------------------------------------------------- records


def benchmark_copies(root, names, max_images, image_size, record_bytes=None):
    """`root` holding synthetic copies of `names` (written once; a marker says how)."""
    from ctx_tf.data.writing import synthetic  # pylint: disable=import-outside-toplevel

    os.makedirs(root, exist_ok=True)
    for name in names:
        marker = os.path.join(root, name, "synthetic.json")
        params = dict(max_images=max_images, image_size=image_size, record_bytes=record_bytes)
        if os.path.exists(marker) and json.load(open(marker)) == params:
            continue
        print(f"writing a synthetic {name} under {root} (once) ...", flush=True)
        synthetic.write_benchmark_copy(root, name, max_images, image_size, record_bytes)
        with open(marker, "w") as f:
            json.dump(params, f)
    return root


def flat_source(root, num_classes, images, record_bytes, image_size):
    from ctx_tf.data.writing import synthetic  # pylint: disable=import-outside-toplevel

    name = f"flat_{num_classes}x{images}x{record_bytes // 1000}kb"
    marker = os.path.join(root, name, "synthetic.json")
    if not os.path.exists(marker):
        print(f"writing {num_classes} x {images} records of {record_bytes // 1000} KB under "
              f"{root} (once) ...", flush=True)
        synthetic.write_flat_source(root, name, (num_classes, 0, 0), images, image_size,
                                    record_bytes)
        with open(marker, "w") as f:
            json.dump({}, f)
    return name


# ----------------------------------------------------------------------------- children


def _ctx_episodes(job):
    """The episodes of `job` as ctx_tf's own commands build them: `(support, query)` sizes."""
    # pylint: disable=import-outside-toplevel
    import gin

    from ctx_tf import cli
    from ctx_tf.data.config import DataConfig
    from ctx_tf.data.dataset_spec import Split
    from ctx_tf.data.sampling import EpisodeDescriptionConfig
    from ctx_tf.evaluation import protocol
    from ctx_tf.evaluation import sources as sources_lib
    from ctx_tf.training import episodes as episodes_lib

    root = job["root"]
    if job["kind"] == "eval":
        setup = protocol.EvaluationSetup(records_root=root, sources=tuple(job["sources"]),
                                         split=Split.TEST, image_size=job["image_size"])
        specs = sources_lib.load_sources(root, job["sources"], Split.TEST)
        stream = (e for e, _ in protocol.source_episodes(setup, specs[job["sources"][0]]))
    else:
        cli.parse_gin([ALL_GIN], [f"DataConfig.image_height = {job['image_size']}"])
        with gin.config_scope("train"):
            config = EpisodeDescriptionConfig()
        specs = list(sources_lib.load_sources(root, job["sources"], Split.TRAIN).values())
        stream = episodes_lib.training_episodes(specs, config, DataConfig(), seed=0)
    return ((len(e.support_labels), len(e.query_labels)) for e in stream)


def child(job):
    """Runs one row (in this process) and prints `RESULT <json>`."""
    machine.set_open_file_limit(job.get("nofile"))
    import tensorflow  # noqa: F401  (loaded before the baseline: its memory is not the row's)

    from ctx_tf import cli  # pylint: disable=import-outside-toplevel

    cli.import_configurables()
    machine.measure_episodes(job, lambda: _ctx_episodes(job))


def run_row(job, python=sys.executable, script=__file__, path=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = path if path else REPO
    result = subprocess.run([python, script, "--child", json.dumps(job)], capture_output=True,
                            text=True, env=env, timeout=job.get("timeout", 3600))
    lines = [l for l in result.stdout.splitlines() if l.startswith("RESULT ")]
    if result.returncode or not lines:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        return {"error": " / ".join(tail) or f"exit {result.returncode}"}
    return json.loads(lines[-1][7:])


# ----------------------------------------------------------------------------- table


def print_row(label, who, result, rate):
    if "error" in result:
        print(f"| {label} | {who} | failed: {result['error'][:160]} |", flush=True)
        return
    gb = 2 ** 30
    print(f"| {label} | {who} | {result['first_s']:.1f} | {result['peak_rss'] / gb:.2f} "
          f"({result['baseline_rss'] / gb:.2f}) | {result['most_descriptors']} | "
          f"{result['episodes_per_s']:.2f} | {result['images_per_s']:.0f} | {rate:.0f} |",
          flush=True)


def rows(args):
    """`(label, job)` of every row of the asked parts."""
    parts = args.parts.split(",")
    common = dict(image_size=args.image_size, episodes=args.episodes, nofile=args.nofile)
    if "all_sources" in parts or "eval" in parts:
        names = sorted(set(EVAL_SOURCES) | {"ilsvrc_2012"})
        small = benchmark_copies(os.path.join(args.root, "small"), names,
                                 args.max_images_per_class, args.small_image_px)
    if "all_sources" in parts:
        train = ["ilsvrc_2012", "aircraft", "cu_birds", "omniglot", "quickdraw", "vgg_flower",
                 "dtd", "fungi"]
        yield "all sources, TRAIN (3,144 classes)", dict(common, kind="train", root=small,
                                                         sources=train)
    if "eval" in parts:
        for name in EVAL_SOURCES:
            yield f"{name}, TEST", dict(common, kind="eval", root=small, sources=[name])
    if "memory" in parts:
        for n in (int(c) for c in args.memory_classes.split(",")):
            name = flat_source(args.root, n, args.memory_images, args.memory_record_kb * 1000,
                               args.large_image_px)
            job = dict(common, kind="train", root=args.root, sources=[name])
            yield f"{n} classes x {args.memory_images} x {args.memory_record_kb} KB", job
            if args.memory_nofile:
                yield (f"{n} classes x {args.memory_images} x {args.memory_record_kb} KB, "
                       f"open-file limit {args.memory_nofile}",
                       dict(job, nofile=args.memory_nofile, ctx_only=True))
    if "imagenet" in parts:
        root = benchmark_copies(os.path.join(args.root, "imagenet"), ["ilsvrc_2012"],
                                args.imagenet_images, args.large_image_px,
                                args.imagenet_record_kb * 1000)
        yield (f"ilsvrc_2012 TRAIN (712 classes x <= {args.imagenet_images} x "
               f"{args.imagenet_record_kb} KB)",
               dict(common, kind="train", root=root, sources=["ilsvrc_2012"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--parts", default="all_sources,eval,memory,imagenet")
    parser.add_argument("--root", default="/tmp/ctx_tf_scale")
    parser.add_argument("--episodes", type=int, default=60)
    parser.add_argument("--image_size", type=int, default=84)
    parser.add_argument("--nofile", type=int, default=1024)
    parser.add_argument("--max_images_per_class", type=int, default=40)
    parser.add_argument("--small_image_px", type=int, default=32)
    parser.add_argument("--large_image_px", type=int, default=84)
    parser.add_argument("--memory_classes", default="48,96")
    parser.add_argument("--memory_images", type=int, default=1000)
    parser.add_argument("--memory_record_kb", type=int, default=33)
    parser.add_argument("--memory_nofile", type=int, default=64)
    parser.add_argument("--imagenet_images", type=int, default=100)
    parser.add_argument("--imagenet_record_kb", type=int, default=110)
    parser.add_argument("--official_python", default=None)
    parser.add_argument("--official_path", default=None)
    args = parser.parse_args()
    if args.child:
        return child(json.loads(args.child))
    print(f"{machine.describe()}; load average {os.getloadavg()[0]:.1f}", flush=True)
    print(f"{args.episodes} timed episodes per row after the first, {args.image_size} px; "
          "peak RSS of the row's process in GB (before the pipeline call in brackets); "
          "matmul = in-run float32 GFLOP/s before the row", flush=True)
    print("| pipeline | reader | first episode (s) | peak RSS GB (baseline) | most open fds | "
          "episodes/s | images/s | matmul |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    official = os.path.join(HERE, "official_pipeline.py")
    for label, job in rows(args):
        print_row(label, "ctx_tf", run_row(job), machine.matmul_gflops())
        if args.official_python and not job.get("ctx_only"):
            print_row(label, "official", run_row(job, args.official_python, official,
                                                 args.official_path + os.pathsep + HERE),
                      machine.matmul_gflops())


if __name__ == "__main__":
    main()
