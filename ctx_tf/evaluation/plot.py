"""Charts of results, drawn with matplotlib's Agg renderer.

    png_bytes = bar_chart({"ctx_tf (ours)": {"omniglot": (0.81, 0.01), ...},
                           "CTX (published)": {...}}, sources=["omniglot", ...],
                          published=["CTX (published)"],
                          withheld={"omniglot": "omniglot: not the official records (...)"})

Values are fractions in [0, 1] (drawn as percent) with their 95% CI as the whisker. One group
of bars per source, one bar per series, in the order given; a series without a value for a
source leaves a gap. On a withheld source the published series are not drawn, the source's
label is marked and a footnote line gives the reason.

Figures come from `ctx_tf.figures` (matplotlib Figures on their own Agg canvas, no pyplot).
"""

import re
import textwrap

from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from ctx_tf.evaluation import leaderboard
from ctx_tf.figures import COLORS, DPI, color, figure_png, new_figure  # noqa: F401  (public here too)

DEFAULT_SIZE = (1200, 600)
_COLORS = COLORS
_FONT_SIZE = 10
_MAX_LABEL_LINES = 3
_LEGEND_COLUMNS = 4
_LINE_SPACING = 1.3


def _check_series(series, sources):
    if not series:
        raise ValueError("bar_chart needs at least one series")
    if not sources:
        raise ValueError("bar_chart needs at least one source")
    for name, values in series.items():
        for source, (mean, ci) in values.items():
            if not (0.0 <= mean <= 1.0) or not ci >= 0:
                raise ValueError(f"{name}/{source}: mean {mean} or ci {ci} out of range; "
                                 "pass fractions in [0, 1]")


def _chars_per_line(width_px, font_size, minimum=20):
    # An average glyph of DejaVu Sans is about 0.6 em wide.
    return max(minimum, int(width_px / (0.6 * font_size * DPI / 72.0)))


def _wrap(label, width):
    """`label` in lines of at most `width` characters, broken after spaces, '_' or '-'
    (source names are often snake_case) and inside a word only when it must."""
    lines, line = [], ""
    for token in re.findall(r"[^ _-]*[ _-]?", label):
        if not token:
            continue
        if line and len(line) + len(token.rstrip()) > width:
            lines.append(line.rstrip())
            line = ""
        while len(token.rstrip()) > width:
            lines.append(token[:width])
            token = token[width:]
        line += token
    if line.strip():
        lines.append(line.rstrip())
    return "\n".join(lines)


def _source_labels(sources, withheld, group_width_px):
    """Tick labels (withheld ones marked) and their rotation: wrapped to the group width, or
    on one rotated line each when wrapping takes too many lines."""
    labels = []
    for source in sources:
        label = leaderboard.SHORT_TITLES.get(source, source)
        labels.append(label + (f" {leaderboard.WITHHELD_MARK}" if source in withheld else ""))
    width = _chars_per_line(group_width_px * 0.95, _FONT_SIZE, minimum=6)
    wrapped = [_wrap(label, width) for label in labels]
    if max(w.count("\n") for w in wrapped) < _MAX_LABEL_LINES:
        return wrapped, 0
    return labels, 30


def footnote_lines(withheld, size):
    """The footnote lines for `{source: reason}`, wrapped to the width of a figure of
    `size` pixels and cut to at most a quarter of its height (the table has them all)."""
    width = _chars_per_line(size[0] * 0.95, _FONT_SIZE - 1)
    lines = []
    for line in leaderboard.withheld_footnote(withheld):
        lines += textwrap.wrap(line, width, subsequent_indent="    ")
    line_px = (_FONT_SIZE - 1) * _LINE_SPACING * DPI / 72.0
    room = max(2, int(size[1] * 0.25 / line_px))
    if len(lines) > room:
        lines = lines[:room - 1] + [f"    ... ({len(lines) - room + 1} more line(s) in the "
                                    "results table)"]
    return lines


def bar_figure(series, sources, title="", size=DEFAULT_SIZE, *, withheld=None, published=(),
               ylabel="accuracy (%)"):
    """The bar chart as a matplotlib Figure (arguments as `bar_chart`)."""
    _check_series(series, sources)
    # With published series, non-Meta-Dataset names are withheld too (their bars would be
    # missing anyway); the footnote explains every missing published bar.
    withheld = (leaderboard.withheld_sources(sources, withheld) if published
                else {s: r for s, r in (withheld or {}).items() if s in sources})
    unknown = [n for n in published if n not in series]
    if unknown:
        raise ValueError(f"published series {unknown} are not among the series {list(series)}")
    figure = new_figure(size)
    axes = figure.add_subplot()
    names = list(series)
    bar_width = 0.8 / len(names)
    for i, name in enumerate(names):
        xs, means, lower, upper = [], [], [], []
        for g, source in enumerate(sources):
            if source not in series[name] or (name in published and source in withheld):
                continue
            mean, ci = series[name][source]
            xs.append(g - 0.4 + (i + 0.5) * bar_width)
            means.append(100.0 * mean)
            # The whisker is the 95% CI, clipped to the [0, 100] axis.
            lower.append(100.0 * min(ci, mean))
            upper.append(100.0 * min(ci, 1.0 - mean))
        axes.bar(xs, means, width=bar_width * 0.95, color=color(i), label=name,
                 yerr=[lower, upper] if xs else None, capsize=min(6.0, 40.0 * bar_width),
                 error_kw={"elinewidth": 1.2, "ecolor": "black", "capthick": 1.2})
    labels, rotation = _source_labels(sources, withheld, size[0] * 0.85 / len(sources))
    axes.set_xticks(range(len(sources)))
    axes.set_xticklabels(labels, rotation=rotation, ha="right" if rotation else "center",
                         rotation_mode="anchor", fontsize=_FONT_SIZE)
    axes.set_xlim(-0.5, len(sources) - 0.5)
    axes.set_ylim(0, 100)
    # Every 10% when there is room, every 20% on a short axis.
    axes.yaxis.set_major_locator(MaxNLocator(nbins=10 if size[1] >= 450 else 5,
                                             steps=[1, 2, 5, 10]))
    axes.set_ylabel(ylabel, fontsize=_FONT_SIZE + 1)
    axes.yaxis.grid(True, color="0.88")
    axes.set_axisbelow(True)
    axes.spines[["top", "right"]].set_visible(False)
    if title:
        figure.suptitle(title, fontsize=_FONT_SIZE + 2)
    # Patches, not the bars: a series with every bar withheld keeps its colour in the legend.
    handles = [Patch(facecolor=color(i), label=name) for i, name in enumerate(names)]
    axes.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.01),
                ncol=min(len(names), _LEGEND_COLUMNS), frameon=False, fontsize=_FONT_SIZE,
                borderaxespad=0.0)
    notes = footnote_lines(withheld, size)
    if notes:
        # A figure-level label: constrained layout keeps it clear of the tick labels.
        figure.supxlabel("\n".join(notes), x=0.01, ha="left", fontsize=_FONT_SIZE - 1,
                         color="0.25", linespacing=_LINE_SPACING)
    return figure


def bar_chart(series, sources, title="", size=DEFAULT_SIZE, *, withheld=None, published=(),
              ylabel="accuracy (%)"):
    """PNG bytes of the chart.

    Args:
      series: ordered `{series name: {source: (mean, ci95)}}`, fractions in [0, 1].
      sources: the sources (groups), in order.
      title: drawn at the top.
      size: `(width, height)` of the image in pixels.
      withheld: `{source: one-line reason}`: sources on which the `published` series are not
        drawn (with `published`, also every non-Meta-Dataset name); the source's label is
        marked and a footnote gives each reason.
      published: names of the series that are published numbers.
      ylabel: the y axis label.
    """
    return figure_png(bar_figure(series, sources, title, size, withheld=withheld,
                                 published=published, ylabel=ylabel))
