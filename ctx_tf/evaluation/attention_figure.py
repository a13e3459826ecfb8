"""The attention figure of one query: where its positions look in the support images.

    pngs = episode_figures(learner, episode, query_indices=[0, 1])   # [(index, png, correct)]

One figure per query. The top row shows the query with its marked positions and the class
logits. Below, one row per (class, marked position), for the query's true class and, when the
prediction is wrong, its predicted class: the query with that position framed, then the class's
support images with that position's attention drawn over each as a heatmap (the support
feature map's weights, bilinearly upsampled to the image). Each support image's title gives its
share of the class's attention for that position (the shares of a class sum to 100% over all
its shots). One colour scale, with its colour bar, serves the whole figure.

Marked positions are a fixed grid (`marked_positions`): the feature-map cells nearest to an
evenly spaced g x g lattice, so every query is probed at the same places and a small feature
map (the demo's 2 x 2) shows all its positions. Support images shown per class are the
`max_shots` with the most attention summed over the marked positions, most first.

A learner has the capability when it has `query_attention(episode, query_indices)` returning
`ctx_tf.learners.QueryAttention` (`has_attention`).
"""

import math

import numpy as np
import tensorflow as tf
from matplotlib.patches import Rectangle

from ctx_tf import figures

CELL_INCHES = 1.15
DEFAULT_NUM_POSITIONS = 4
DEFAULT_MAX_SHOTS = 5
COLORMAP = "inferno"
HEAT_ALPHA = 0.6
_CORRECT_COLOR = "#1a7f37"
_WRONG_COLOR = "#c62828"
# Frame colours of the marked positions (distinct from the heatmap's colours).
_POSITION_COLORS = ["#00e5ff", "#76ff03", "#ff4081", "#ffea00", "#2979ff", "#ff9100",
                    "#e040fb", "#ffffff", "#18ffff"]


def has_attention(learner):
    """True when `learner` can show its attention (`query_attention`, see the docstring)."""
    return callable(getattr(learner, "query_attention", None))


def marked_positions(grid, num_positions=DEFAULT_NUM_POSITIONS):
    """Feature-map cells `[(row, col)]` on a g x g lattice, g = ceil(sqrt(num_positions)),
    at most the map's own size per axis, in row-major order without repeats."""
    height, width = (int(v) for v in grid)
    if num_positions < 1:
        raise ValueError(f"num_positions must be >= 1, got {num_positions}")
    side = math.ceil(math.sqrt(num_positions))

    def lattice(size):
        count = min(side, size)
        return sorted({int(round((i + 0.5) * size / count - 0.5)) for i in range(count)})

    cells = [(r, c) for r in lattice(height) for c in lattice(width)]
    return cells[:num_positions]


def upsample(heat, size):
    """Bilinear `[h, w]` -> `[size, size]` (half-pixel centres: a cell's value stays at the
    centre of the image patch it covers)."""
    heat = tf.convert_to_tensor(np.asarray(heat, np.float32))[None, :, :, None]
    resized = tf.image.resize(heat, [int(size[0]), int(size[1])], method="bilinear")
    return resized[0, :, :, 0].numpy()


def figure_size(rows, columns):
    """(width, height) in pixels of a figure of `rows` x `columns` image cells (the header
    row included), with room for the colour bar and titles."""
    return (max(int((columns * CELL_INCHES + 1.3) * figures.DPI), 600),
            int((rows * CELL_INCHES + 0.5) * figures.DPI))


def _display(image):
    """Images in [-1, 1] -> RGB floats in [0, 1]."""
    image = np.clip((np.asarray(image, np.float32) + 1.0) / 2.0, 0.0, 1.0)
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image


def _bare(axes):
    axes.set_xticks([])
    axes.set_yticks([])


def _frame(axes, cell, grid, image_shape, color, label=None):
    """Draws the rectangle of feature cell `cell` over an image drawn in `axes`."""
    cell_h, cell_w = image_shape[0] / grid[0], image_shape[1] / grid[1]
    axes.add_patch(Rectangle((cell[1] * cell_w - 0.5, cell[0] * cell_h - 0.5), cell_w, cell_h,
                             fill=False, edgecolor=color, linewidth=2.0))
    if label is not None:
        axes.text(cell[1] * cell_w + 1, cell[0] * cell_h + 1, label, color=color, fontsize=9,
                  fontweight="bold", va="top", ha="left")


def _logits_panel(axes, logits, true_label, predicted):
    colors = ["#9e9e9e"] * len(logits)
    colors[predicted] = _WRONG_COLOR
    colors[true_label] = _CORRECT_COLOR
    axes.bar(np.arange(len(logits)), logits, color=colors)
    axes.set_xticks(np.arange(len(logits)))
    axes.set_xlabel("class (green: true, red: predicted if wrong)", fontsize=8)
    axes.set_ylabel("logit = -distance", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.set_title("class logits", fontsize=9)


def attention_figure(query_image, support_images, support_labels, weights, query_grid,
                     support_grid, logits, true_label, num_positions=DEFAULT_NUM_POSITIONS,
                     max_shots=DEFAULT_MAX_SHOTS, title=""):
    """The figure of one query (see the module docstring); a matplotlib `Figure`.

    Args:
      query_image: `[H, W, C]` in [-1, 1].
      support_images: `[num_support, H, W, C]` in [-1, 1].
      support_labels: int `[num_support]`.
      weights: `[query_positions, num_support, support_positions]`, this query's
        `ChosenAttention.weights`.
      query_grid, support_grid: (height, width) of the query and support feature maps.
      logits: `[K]`; true_label: the query's label.
    """
    support_labels = np.asarray(support_labels, np.int64)
    logits = np.asarray(logits, np.float64)
    weights = np.asarray(weights, np.float64)
    predicted, true_label = int(np.argmax(logits)), int(true_label)
    correct = predicted == true_label
    positions = marked_positions(query_grid, num_positions)
    rows_of = [r * int(query_grid[1]) + c for r, c in positions]
    classes = [true_label] if correct else [true_label, predicted]
    shown = {}
    for label in classes:
        members = np.nonzero(support_labels == label)[0]
        mass = weights[rows_of][:, members, :].sum(axis=(0, 2))
        shown[label] = members[np.argsort(-mass, kind="stable")[:max_shots]]
    columns = 1 + max(len(v) for v in shown.values())
    rows = 1 + len(classes) * len(positions)
    vmax = max(float(weights[rows_of][:, shown[c], :].max()) for c in classes)
    norm_kwargs = dict(vmin=0.0, vmax=max(vmax, 1e-12))

    figure = figures.new_figure(figure_size(rows, columns))
    outcome = "correct" if correct else "WRONG"
    figure.suptitle(f"{title}true class {true_label}, predicted {predicted}: {outcome}",
                    color=_CORRECT_COLOR if correct else _WRONG_COLOR, fontsize=11,
                    fontweight="bold")
    # Two subfigures, so that the logits panel's labels do not widen the grid's columns.
    header, grid = figure.subfigures(2, 1, height_ratios=[1.25, rows - 1])
    image_shape = np.asarray(query_image).shape
    query = _display(query_image)

    top = header.add_gridspec(1, columns)
    axes = header.add_subplot(top[0, 0])
    axes.imshow(query, interpolation="nearest")
    for i, cell in enumerate(positions):
        _frame(axes, cell, query_grid, image_shape, _POSITION_COLORS[i % len(_POSITION_COLORS)],
               str(i + 1))
    axes.set_title("query", fontsize=9)
    for side in axes.spines.values():
        side.set_edgecolor(_CORRECT_COLOR if correct else _WRONG_COLOR)
        side.set_linewidth(3)
    _bare(axes)
    if columns > 1:
        _logits_panel(header.add_subplot(top[0, 1:]), logits, true_label, predicted)

    spec = grid.add_gridspec(rows - 1, columns)
    heat_axes, mappable = [], None
    for block, label in enumerate(classes):
        kind = "true" if label == true_label else "predicted"
        for p, cell in enumerate(positions):
            row = block * len(positions) + p
            color = _POSITION_COLORS[p % len(_POSITION_COLORS)]
            axes = grid.add_subplot(spec[row, 0])
            axes.imshow(query, interpolation="nearest")
            _frame(axes, cell, query_grid, image_shape, color, str(p + 1))
            axes.set_ylabel(f"{kind} class {label}\nposition {p + 1}", fontsize=8)
            _bare(axes)
            for column, n in enumerate(shown[label]):
                attention = weights[rows_of[p], n].reshape(support_grid)
                axes = grid.add_subplot(spec[row, 1 + column])
                support_image = np.asarray(support_images[n])
                axes.imshow(_display(support_image), interpolation="nearest")
                mappable = axes.imshow(upsample(attention, support_image.shape[:2]),
                                       cmap=COLORMAP, alpha=HEAT_ALPHA, **norm_kwargs)
                axes.set_title(f"support {n}: {100 * attention.sum():.0f}%", fontsize=8)
                _bare(axes)
                heat_axes.append(axes)
    if mappable is not None:
        bar = grid.colorbar(mappable, ax=heat_axes, shrink=0.6, aspect=30)
        bar.set_label("attention weight (a class's shots x positions sum to 1)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    return figure


def episode_figures(learner, episode, query_indices, num_positions=DEFAULT_NUM_POSITIONS,
                    max_shots=DEFAULT_MAX_SHOTS, class_ids=True):
    """`[(query index, PNG bytes, correct)]`: the attention figure of each chosen query of
    `episode` (an `Episode`), from one `learner.query_attention` call."""
    if not has_attention(learner):
        raise ValueError(f"{type(learner).__name__} has no spatial attention to show (no "
                         "query_attention method)")
    indices = [int(i) for i in query_indices]
    maps = learner.query_attention(episode, indices)
    weights = maps.attention.weights.numpy()
    logits = maps.attention.logits.numpy()
    query_labels = np.asarray(episode.query_labels)
    query_class_ids = np.asarray(episode.query_class_ids)
    support_images = np.asarray(episode.support_images)
    pngs = []
    for i, index in enumerate(indices):
        title = f"query {index}"
        if class_ids:
            title += f" (class id {int(query_class_ids[index])})"
        figure = attention_figure(
            np.asarray(episode.query_images[index]), support_images, episode.support_labels,
            weights[i], maps.query_grid, maps.support_grid, logits[i], query_labels[index],
            num_positions=num_positions, max_shots=max_shots, title=f"{title}: ")
        correct = int(np.argmax(logits[i])) == int(query_labels[index])
        pngs.append((index, figures.figure_png(figure), correct))
    return pngs
