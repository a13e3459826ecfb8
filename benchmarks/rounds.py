"""Interleaved rounds: how the benchmarks compare rows on a machine whose speed drifts.

A round runs every row once, each in its own process, one after another; the order alternates
between rounds (as given, reversed, as given, ...: ABBA), so that no row always runs first or
always follows the same neighbour. Ratios are taken within a round (both rows ran minutes
apart) and summarised by their median over the rounds. Standard library only.
"""

import os
import statistics


def orders(rows, rounds):
    """The order of `rows` in each of `rounds` rounds."""
    rows = list(rows)
    return [rows if r % 2 == 0 else rows[::-1] for r in range(rounds)]


def load_average():
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def ratios(rounds, numerator, denominator, value):
    """`value(results[numerator]) / value(results[denominator])` of every round (a list of
    {row: result or None}) in which both rows ran."""
    out = []
    for results in rounds:
        a, b = results.get(numerator), results.get(denominator)
        if a is not None and b is not None:
            out.append(value(a) / value(b))
    return out


def summary(values):
    """'2.39, 3.33, 2.73 | **2.73x**': the per-round ratios and their median (Markdown)."""
    if not values:
        return "- | -"
    return (", ".join(f"{v:.2f}" for v in values)
            + f" | **{statistics.median(values):.2f}x**")
