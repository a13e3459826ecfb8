"""Figures drawn with matplotlib's Agg renderer, shared by every chart and image ctx_tf writes.

Figures are built on `matplotlib.figure.Figure` with their own Agg canvas, never through
pyplot, so nothing here changes the backend or the global figure state a user relies on.
"""

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
# matplotlib's default cycle (tab10), as 8-bit RGB: bar interiors are drawn in exactly these.
COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
          (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
MIN_SIZE = (200, 150)


def color(index):
    """The matplotlib colour of series `index` (its 8-bit RGB in `COLORS`)."""
    r, g, b = COLORS[index % len(COLORS)]
    return (r / 255.0, g / 255.0, b / 255.0)


def new_figure(size):
    """A Figure of `size = (width, height)` pixels on its own Agg canvas."""
    width, height = size
    if width < MIN_SIZE[0] or height < MIN_SIZE[1]:
        raise ValueError(f"image size {size} is too small for a readable chart "
                         f"(at least {MIN_SIZE[0]}x{MIN_SIZE[1]} pixels)")
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def figure_png(figure):
    """PNG bytes of `figure` at exactly its pixel size."""
    buffer = io.BytesIO()
    figure.canvas.print_png(buffer)
    return buffer.getvalue()
