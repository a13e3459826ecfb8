"""Bar chart of per-source accuracy with 95% CI error bars, drawn with Pillow.

    png_bytes = bar_chart({"ctx_tf": {"omniglot": (0.81, 0.01), ...},
                           "CTX (published)": {...}}, sources=["omniglot", ...])

Values are fractions in [0, 1] (drawn as percent). One group of bars per source, one bar per
series, in the order given; a series without a value for a source leaves a gap.
"""

import io

from PIL import Image, ImageDraw, ImageFont

from ctx_tf.evaluation import leaderboard

DEFAULT_SIZE = (1200, 600)
_COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75)]
_BLACK = (0, 0, 0)
_GRID = (220, 220, 220)
_WHITE = (255, 255, 255)


def _text_size(draw, text, font):
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def bar_chart(series, sources, title="", size=DEFAULT_SIZE):
    """PNG bytes of the chart.

    Args:
      series: ordered `{series name: {source: (mean, ci95)}}`, fractions in [0, 1].
      sources: the sources (groups), in order.
      title: drawn at the top.
      size: `(width, height)` of the image in pixels.
    """
    if not series:
        raise ValueError("bar_chart needs at least one series")
    if not sources:
        raise ValueError("bar_chart needs at least one source")
    width, height = size
    if width < 200 or height < 150:
        raise ValueError(f"image size {size} is too small for a readable chart")
    for name, values in series.items():
        for source, (mean, ci) in values.items():
            if not (0.0 <= mean <= 1.0) or ci < 0:
                raise ValueError(f"{name}/{source}: mean {mean} or ci {ci} out of range; "
                                 "pass fractions in [0, 1]")

    image = Image.new("RGB", (width, height), _WHITE)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    _, line_h = _text_size(draw, "Ag%", font)

    left, right = 50, width - 15
    top = 15 + (line_h + 8 if title else 0) + line_h + 10  # title, then legend
    bottom = height - (2 * line_h + 16)  # source labels below the axis
    if title:
        tw, _ = _text_size(draw, title, font)
        draw.text(((width - tw) // 2, 10), title, fill=_BLACK, font=font)

    # Legend, one line, left to right.
    x = left
    legend_y = top - line_h - 8
    for i, name in enumerate(series):
        color = _COLORS[i % len(_COLORS)]
        draw.rectangle([x, legend_y + 1, x + 12, legend_y + line_h], fill=color)
        draw.text((x + 16, legend_y), name, fill=_BLACK, font=font)
        x += 16 + _text_size(draw, name, font)[0] + 20

    def y_of(fraction):
        return bottom - fraction * (bottom - top)

    # Axis with a percent grid.
    for pct in range(0, 101, 10):
        y = y_of(pct / 100.0)
        draw.line([(left, y), (right, y)], fill=_GRID if pct else _BLACK)
        label = f"{pct}%"
        lw, lh = _text_size(draw, label, font)
        draw.text((left - lw - 6, y - lh // 2 - 1), label, fill=_BLACK, font=font)
    draw.line([(left, top), (left, bottom)], fill=_BLACK)

    group_w = (right - left) / len(sources)
    bar_w = max(2.0, group_w * 0.8 / len(series))
    for g, source in enumerate(sources):
        group_x = left + g * group_w + group_w * 0.1
        for i, (name, values) in enumerate(series.items()):
            if source not in values:
                continue
            mean, ci = values[source]
            x0 = group_x + i * bar_w
            x1 = x0 + bar_w - 1
            draw.rectangle([x0, y_of(mean), x1, bottom], fill=_COLORS[i % len(_COLORS)])
            cx = (x0 + x1) / 2
            lo, hi = y_of(max(0.0, mean - ci)), y_of(min(1.0, mean + ci))
            cap = max(1.0, bar_w / 4)
            draw.line([(cx, lo), (cx, hi)], fill=_BLACK, width=1)
            draw.line([(cx - cap, lo), (cx + cap, lo)], fill=_BLACK, width=1)
            draw.line([(cx - cap, hi), (cx + cap, hi)], fill=_BLACK, width=1)
        label = leaderboard.SHORT_TITLES.get(source, source)
        lw, _ = _text_size(draw, label, font)
        center = left + (g + 0.5) * group_w
        draw.text((center - lw / 2, bottom + 6), label, fill=_BLACK, font=font)

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
