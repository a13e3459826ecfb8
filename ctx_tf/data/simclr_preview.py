"""A PNG preview of one SimCLR episode: every row shows a support image next to its query.

Command line::

  python -m ctx_tf.data.simclr_preview --records_root_dir=DIR --dataset=NAME --out=grid.png \
      [--split=train] [--image_size=84] [--seed=0] [--max_rows=16] [--color_jitter_strength=S]
"""

from ctx_tf.cli import quiet_start

# First, so that `python -m` captures TensorFlow's start-up logs of the imports below.
quiet_start.begin_if_main(__name__)

import os

import numpy as np
from absl import app
from absl import flags

from ctx_tf import cli
from ctx_tf import figures
from ctx_tf import files
from ctx_tf.data import pipeline
from ctx_tf.data.dataset_spec import SPLIT_NAMES, Split, load_dataset_spec, use_ontologies
from ctx_tf.data.episode import Episode
from ctx_tf.data.sampling import EpisodeDescriptionConfig
from ctx_tf.data.simclr import to_simclr_episode

# Inches per image cell (at figures.DPI), and the header's height in inches.
CELL_INCHES = 1.4
HEADER_INCHES = 0.6


def grid_size(rows):
    """(width, height) in pixels of the preview of `rows` rows."""
    return (int(round(2 * CELL_INCHES * figures.DPI + 0.4 * figures.DPI)),
            int(round((rows * CELL_INCHES + HEADER_INCHES) * figures.DPI)))


def _display(images):
    return np.clip((np.asarray(images, np.float32) + 1.0) / 2.0, 0.0, 1.0)


def save_episode_grid(episode, path, max_rows=16):
    """Writes a PNG with one row per query: its support image (left) and the query (right).

    For a SimCLR episode the left image is the support image the query was copied from
    (query label = support index); for a normal episode it is the first support image of the
    query's class. Each image is titled with its index and label; the figure's size is
    `grid_size(R)`, R = min(num_query, max_rows).

    Args:
      episode: :class:`Episode` of numpy arrays or tensors, images in [-1, 1].
      path: output file (PNG).
      max_rows: maximum number of rows (queries shown).

    Returns:
      (height, width) of the written image.
    """
    e = Episode(*[np.asarray(t) for t in episode])
    support_labels = e.support_labels.astype(np.int64)
    query_labels = e.query_labels.astype(np.int64)
    rows = min(len(query_labels), int(max_rows))
    if rows <= 0:
        raise ValueError("the episode has no query images to show")
    width, height = grid_size(rows)
    figure = figures.new_figure((width, height))
    figure.suptitle(f"{rows} of {len(query_labels)} queries, {len(support_labels)} support "
                    "images", fontsize=10)
    grid = figure.add_gridspec(rows, 2)
    support, query = _display(e.support_images), _display(e.query_images)
    for r in range(rows):
        matches = np.nonzero(support_labels == query_labels[r])[0]
        left, right = figure.add_subplot(grid[r, 0]), figure.add_subplot(grid[r, 1])
        if len(matches):
            left.imshow(support[matches[0]], interpolation="nearest")
            left.set_title(f"support {matches[0]} (label {support_labels[matches[0]]})",
                           fontsize=8)
        else:
            left.set_title(f"no support image of label {query_labels[r]}", fontsize=8)
        right.imshow(query[r], interpolation="nearest")
        right.set_title(f"query {r} (label {query_labels[r]})", fontsize=8)
        for axes in (left, right):
            axes.set_xticks([])
            axes.set_yticks([])
    files.atomic_write(path, figures.figure_png(figure))
    return height, width


def first_episode(records_root_dir, dataset, split="train", image_size=84, seed=0):
    """The first decoded episode of `dataset` from the single-source episode pipeline."""
    spec = load_dataset_spec(os.path.join(records_root_dir, dataset))
    use_dag, use_bilevel = use_ontologies(dataset)
    split = Split[split.upper()]
    data = pipeline.make_one_source_episode_pipeline(
        spec, use_dag, use_bilevel, split, EpisodeDescriptionConfig(),
        image_size=image_size, shuffle_buffer_size=1000, seed=seed)
    episodes = pipeline.iterate(data, [spec], split)
    episode, _ = next(episodes)  # the pipeline yields (episode, source id)
    episodes.close()  # its generators stop before the iterator goes
    return Episode(*episode)


def define_flags(flag_values=None):
    """Defines the command-line flags on `flag_values` (default: the global absl FLAGS)."""
    fv = flags.FLAGS if flag_values is None else flag_values
    flags.DEFINE_string("records_root_dir", None, "Folder of sources (official layout).",
                        flag_values=fv, required=True)
    flags.DEFINE_string("dataset", None, "Source name.", flag_values=fv, required=True)
    flags.DEFINE_string("out", "simclr_episode.png", "The PNG written.", flag_values=fv)
    flags.DEFINE_enum("split", "train", [name.lower() for name in SPLIT_NAMES],
                      "Classes of the episode.", flag_values=fv)
    flags.DEFINE_integer("image_size", 84, "Image side.", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Episode and augmentation seed.", flag_values=fv)
    flags.DEFINE_integer("max_rows", 16, "Rows (queries) shown at most.", flag_values=fv)
    flags.DEFINE_float("color_jitter_strength", None, "SimCLR colour jitter strength.",
                       flag_values=fv)
    return fv


def run_cli(f):
    """Writes the PNG grid of one SimCLR episode for parsed absl flags `f`; returns 0."""
    episode = first_episode(f.records_root_dir, f.dataset, f.split, f.image_size, f.seed)
    simclr = to_simclr_episode(episode, color_jitter_strength=f.color_jitter_strength,
                               seed=f.seed)
    height, width = save_episode_grid(simclr, f.out, max_rows=f.max_rows)
    print(
        f"wrote {f.out} ({width}x{height}): {min(f.max_rows, len(simclr.query_labels))} of "
        f"{len(simclr.query_labels)} queries, way {len(simclr.support_labels)}"
    )
    return 0


def main(argv):
    """Command line: writes a PNG with one SimCLR episode (see the module docstring)."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    return run_cli(flags.FLAGS)


if __name__ == "__main__":
    define_flags()
    cli.run("data.simclr_preview", main)
