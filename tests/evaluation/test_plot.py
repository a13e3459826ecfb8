"""The results bar chart: PNG file, bars and whiskers, withheld sources, readable text."""

import io
import itertools

import matplotlib
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from ctx_tf import files
from ctx_tf.evaluation import leaderboard
from ctx_tf.evaluation import plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OMNIGLOT_REASON = ("omniglot: not the official records (TEST: 1,000 of 13,180 images; 20 of "
                   "659 classes; 639 class names differ)")


def _series():
    ctx = leaderboard.published_row("CTX")
    return {
        "ctx_tf (ours)": {s: (m / 100 - 0.05, c / 100) for s, (m, c) in ctx.results.items()},
        "CTX (published)": {s: (m / 100, c / 100) for s, (m, c) in ctx.results.items()},
        "raw-pixel floor": {s: (0.3, 0.01) for s in ctx.results},
    }


def _bar_centres(figure):
    """{series name: [x centre of each drawn bar]}."""
    axes = figure.get_axes()[0]
    return {c.get_label(): [p.get_x() + p.get_width() / 2 for p in c.patches]
            for c in axes.containers if isinstance(c, matplotlib.container.BarContainer)}


def test_png_file_signature_and_pixel_size(tmp_path):
    png = plot.bar_chart(_series(), list(leaderboard.TEST_SOURCES), title="t", size=(1000, 480))
    path = tmp_path / "results.png"
    files.atomic_write(str(path), png)
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.size == (1000, 480)
    pixels = np.asarray(image.convert("RGB"))
    for i in range(3):  # every series is drawn in its colour
        assert np.any(np.all(pixels == plot._COLORS[i], axis=-1)), i


def test_bars_and_whiskers_are_the_means_and_cis():
    series = {"a": {"omniglot": (0.8, 0.01), "aircraft": (0.5, 0.02)},
              "b": {"omniglot": (0.995, 0.01)}}
    figure = plot.bar_figure(series, ["omniglot", "aircraft"], title="t")
    axes = figure.get_axes()[0]
    bars = {c.get_label(): c for c in axes.containers
            if isinstance(c, matplotlib.container.BarContainer)}
    assert [p.get_height() for p in bars["a"].patches] == pytest.approx([80.0, 50.0])
    assert [p.get_height() for p in bars["b"].patches] == pytest.approx([99.5])
    whiskers = {name: [(seg[0][1], seg[1][1]) for seg in
                       c.errorbar.lines[2][0].get_segments()] for name, c in bars.items()}
    assert whiskers["a"] == [pytest.approx((79.0, 81.0)), pytest.approx((48.0, 52.0))]
    assert whiskers["b"] == [pytest.approx((98.5, 100.0))]  # clipped to the axis
    assert axes.get_ylabel() == "accuracy (%)"
    assert axes.get_ylim() == (0.0, 100.0)
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["a", "b"]
    assert [t.get_text() for t in axes.get_xticklabels()] == ["Omniglot", "Aircraft"]
    assert isinstance(figure.canvas, FigureCanvasAgg)


def test_withheld_sources_drop_the_published_bars_and_get_a_footnote():
    sources = list(leaderboard.TEST_SOURCES)
    figure = plot.bar_figure(_series(), sources, withheld={"omniglot": OMNIGLOT_REASON},
                             published=["CTX (published)"])
    centres = _bar_centres(figure)
    omniglot = sources.index("omniglot")
    assert len(centres["ctx_tf (ours)"]) == len(sources) == len(centres["raw-pixel floor"])
    assert len(centres["CTX (published)"]) == len(sources) - 1
    assert all(abs(x - omniglot) > 0.5 for x in centres["CTX (published)"])
    labels = [t.get_text() for t in figure.get_axes()[0].get_xticklabels()]
    assert labels[omniglot] == f"Omniglot {leaderboard.WITHHELD_MARK}"
    assert all(leaderboard.WITHHELD_MARK not in t for i, t in enumerate(labels) if i != omniglot)
    texts = [t.get_text() for t in figure.texts]
    footnote = [t for t in texts if t.startswith(leaderboard.WITHHELD_HEADING)]
    assert len(footnote) == 1
    assert " ".join(footnote[0].split()) == " ".join(
        [leaderboard.WITHHELD_HEADING, "-", OMNIGLOT_REASON])

    # Without published series only the given reasons are footnotes; with them, a source
    # outside Meta-Dataset is withheld too.
    plain = plot.bar_figure({"run": {"demo": (0.9, 0.01)}}, ["demo"])
    assert not any(leaderboard.WITHHELD_HEADING in t.get_text() for t in plain.texts)
    mixed = plot.bar_figure({"ours": {"demo": (0.9, 0.01), "omniglot": (0.8, 0.01)},
                             "CTX (published)": {"omniglot": (0.82, 0.01)}},
                            ["demo", "omniglot"], published=["CTX (published)"])
    assert any("demo: not a Meta-Dataset source" in t.get_text() for t in mixed.texts)


def test_footnotes_share_a_reason_and_fit_the_image():
    names = [f"folder_{i}" for i in range(40)]
    withheld = {n: f"{n}: a reason that is not short at all, " + "and goes on " * i
                for i, n in enumerate(names)}
    lines = plot.footnote_lines(withheld, (600, 400))
    line_px = 9 * 1.3 * 100 / 72
    assert len(lines) == int(400 * 0.25 / line_px)
    assert lines[-1].strip().startswith("... (") and "results table" in lines[-1]
    assert all(len(line) <= plot._chars_per_line(600 * 0.95, 9) for line in lines)
    # Non-Meta-Dataset names share one line.
    same = leaderboard.withheld_sources(["a", "b", "omniglot"], {"omniglot": OMNIGLOT_REASON})
    assert plot.footnote_lines(same, (1200, 600)) == [
        leaderboard.WITHHELD_HEADING, "- a, b: not a Meta-Dataset source", f"- {OMNIGLOT_REASON}"]


_FONT_PX = 10 * 100 / 72  # the tick labels' 10 pt at 100 dpi


def _overlap(a, b):
    return a.x0 < b.x1 - 1 and b.x0 < a.x1 - 1 and a.y0 < b.y1 - 1 and b.y0 < a.y1 - 1


@pytest.mark.parametrize("sources, size", [
    (list(leaderboard.TEST_SOURCES), (1200, 600)),
    ([f"my_own_very_long_folder_name_{i}" for i in range(8)], (600, 400)),
    (["my_own_very_long_folder_name_of_images", "omniglot", "another_dataset"], (500, 400)),
])
def test_no_text_overlaps_and_all_text_is_inside_the_image(sources, size):
    series = {"ours": {s: (0.7, 0.02) for s in sources},
              "CTX (published)": {s: (0.8, 0.01) for s in sources}}
    figure = plot.bar_figure(series, sources, title="a title", size=size,
                             withheld={sources[0]: f"{sources[0]}: " + "a long reason " * 12},
                             published=["CTX (published)"])
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    axes = figure.get_axes()[0]
    labels = axes.get_xticklabels()
    ticks = [t.get_window_extent(renderer) for t in labels]
    others = [t.get_window_extent(renderer) for t in figure.texts]
    others.append(axes.get_legend().get_window_extent(renderer))
    others.append(axes.yaxis.label.get_window_extent(renderer))
    rotation = labels[0].get_rotation()
    if rotation:
        # Rotated labels are parallel lines: apart when the tick spacing, measured across
        # them, exceeds a line's height.
        spacing = ticks[1].x1 - ticks[0].x1
        line_height = _FONT_PX * 1.2
        assert spacing * np.sin(np.radians(rotation)) > line_height
        pairs = itertools.chain(itertools.product(ticks, others),
                                itertools.combinations(others, 2))
    else:
        pairs = itertools.combinations(ticks + others, 2)
    for a, b in pairs:
        assert not _overlap(a, b), (a, b)
    for box in ticks + others:
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= size[0] and box.y1 <= size[1], box


def test_invalid_input_is_rejected():
    with pytest.raises(ValueError, match="fractions"):
        plot.bar_chart({"ours": {"omniglot": (80.0, 1.0)}}, ["omniglot"])
    with pytest.raises(ValueError, match="at least one series"):
        plot.bar_chart({}, ["omniglot"])
    with pytest.raises(ValueError, match="at least one source"):
        plot.bar_chart({"ours": {}}, [])
    with pytest.raises(ValueError, match="too small"):
        plot.bar_chart({"ours": {"omniglot": (0.8, 0.01)}}, ["omniglot"], size=(100, 100))
    with pytest.raises(ValueError, match="published series"):
        plot.bar_chart({"ours": {"omniglot": (0.8, 0.01)}}, ["omniglot"], published=["CTX"])


def test_label_wrapping_breaks_at_underscores():
    assert plot._wrap("my_own_very_long_folder_name", 12) == "my_own_very_\nlong_folder_\nname"
    assert plot._wrap("abcdefghijklmnopqrstuvwxyz", 10) == "abcdefghij\nklmnopqrst\nuvwxyz"
    assert plot._wrap("Omniglot", 12) == "Omniglot"
