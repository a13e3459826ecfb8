"""The attention figure: marked positions, upsampling, layout for right and wrong queries."""

import numpy as np
import pytest
from PIL import Image

from ctx_tf.evaluation import attention_figure as af
from ctx_tf.evaluation import plot


def test_marked_positions_are_a_fixed_grid():
    assert af.marked_positions((2, 2), 4) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert af.marked_positions((6, 6), 4) == [(1, 1), (1, 4), (4, 1), (4, 4)]
    assert af.marked_positions((1, 1), 4) == [(0, 0)]
    assert af.marked_positions((5, 5), 9) == [(r, c) for r in (0, 2, 4) for c in (0, 2, 4)]
    assert af.marked_positions((6, 6), 3) == [(1, 1), (1, 4), (4, 1)]
    with pytest.raises(ValueError, match="num_positions"):
        af.marked_positions((2, 2), 0)


def test_upsample_keeps_constants_and_the_peak_cell(rng_seed):
    np.testing.assert_allclose(af.upsample(np.full((2, 3), 0.25), (32, 48)), 0.25, rtol=1e-6)
    heat = np.zeros((4, 4))
    rng = np.random.RandomState(rng_seed)
    r, c = rng.randint(4, size=2)
    heat[r, c] = 1.0
    big = af.upsample(heat, (32, 32))
    assert big.shape == (32, 32)
    peak = np.unravel_index(np.argmax(big), big.shape)
    assert (peak[0] // 8, peak[1] // 8) == (r, c)  # the peak stays inside its cell's patch


def _inputs(rng, way=3, shots=4, grid=(2, 2), size=16):
    support_labels = np.repeat(np.arange(way), shots)
    positions = grid[0] * grid[1]
    weights = rng.uniform(size=(positions, len(support_labels), positions))
    for label in range(way):  # a class's shots x positions sum to 1, as the layer's
        members = support_labels == label
        weights[:, members] /= weights[:, members].sum(axis=(1, 2), keepdims=True)
    images = rng.uniform(-1, 1, size=(len(support_labels), size, size, 3))
    return rng.uniform(-1, 1, size=(size, size, 3)), images, support_labels, weights


def _png_size(png):
    from io import BytesIO

    with Image.open(BytesIO(png)) as image:
        return image.size


@pytest.mark.parametrize("logits, true_label, blocks", [
    ([-1.0, -5.0, -3.0], 0, 1),   # right: the true class only
    ([-4.0, -5.0, -1.0], 0, 2),   # wrong: true and predicted classes
])
def test_figure_has_a_row_per_class_and_position(rng_seed, logits, true_label, blocks):
    rng = np.random.RandomState(rng_seed)
    query, images, labels, weights = _inputs(rng)
    figure = af.attention_figure(query, images, labels, weights, (2, 2), (2, 2),
                                 np.asarray(logits), true_label, num_positions=4, max_shots=3)
    png = plot.figure_png(figure)
    assert _png_size(png) == af.figure_size(1 + blocks * 4, 1 + 3)
    title = figure._suptitle.get_text()
    assert ("correct" in title) == (blocks == 1) and ("WRONG" in title) == (blocks == 2)
    # Heatmaps: one per shown shot per (class, position), all on one colour scale.
    heatmaps = [a.images[1] for a in figure.get_axes() if len(a.images) == 2]
    assert len(heatmaps) == blocks * 4 * 3
    assert len({(h.norm.vmin, h.norm.vmax) for h in heatmaps}) == 1
    # The shown shots of the true class are its 3 most attended, most first.
    members = np.nonzero(labels == true_label)[0]
    mass = weights[:, members].sum(axis=(0, 2))
    expected = members[np.argsort(-mass, kind="stable")[:3]]
    titles = [a.get_title() for a in figure.get_axes() if len(a.images) == 2][:3]
    assert [int(t.split()[1].rstrip(":")) for t in titles] == list(expected)
