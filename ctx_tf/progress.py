"""Progress lines of long loops (evaluation episodes, training updates, conversions) and the
one format of a duration and of an accuracy on the console and in reports."""

import math
import sys
import time


def format_duration(seconds):
    """`h:mm:ss` (`0:03:07`, `12:00:00`), or `?` for an unknown (infinite or NaN) duration."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(max(seconds, 0)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def format_accuracy(mean, ci95):
    """`mean ± ci95 %` of fractions in [0, 1], in percent with two decimals: `89.25 ± 1.02 %`."""
    return f"{100 * mean:.2f} ± {100 * ci95:.2f} %"


def eta(remaining, rate):
    """The formatted time left for `remaining` items at `rate` items per second."""
    return format_duration(remaining / rate if rate > 0 else float("inf"))


class Progress:
    """Prints `[source] done/total episodes, episodes/s, ETA, running accuracy` at the first
    and the last episode and every `every_seconds` between, through `log` (default: a line
    on `stream`, sys.stdout)."""

    def __init__(self, stream=None, every_seconds=10.0, log=None):
        if log is None:
            stream = stream if stream is not None else sys.stdout
            log = lambda line: print(line, file=stream, flush=True)  # noqa: E731
        self.log = log
        self.every_seconds = every_seconds

    def start(self, source, total, done=()):
        """`done`: records of episodes evaluated before a resume (counted, not timed)."""
        self.source, self.total = source, total
        self.t0 = self.last = time.perf_counter()
        self.resumed = len(done)
        self.sum = float(sum(e["accuracy"] for e in done))

    def update(self, done, accuracy):
        self.sum += accuracy
        now = time.perf_counter()
        if (done == self.total or done == self.resumed + 1
                or now - self.last >= self.every_seconds):
            self.last = now
            rate = (done - self.resumed) / max(now - self.t0, 1e-9)
            self.log(f"[{self.source}] {done}/{self.total} episodes  {rate:.2f} episodes/s  "
                     f"ETA {eta(self.total - done, rate)}  running accuracy "
                     f"{100 * self.sum / done:.2f}%")
