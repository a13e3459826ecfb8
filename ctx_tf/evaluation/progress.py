"""Progress lines of long loops (evaluation episodes, training updates)."""

import math
import sys
import time


def format_duration(seconds):
    """`1h02m`, `3m07s`, or `?` for an unknown (infinite or NaN) duration."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(max(seconds, 0)))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


class Progress:
    """Prints `[source] done/total episodes, episodes/s, ETA, running accuracy` now and then."""

    def __init__(self, stream=None, every_seconds=10.0):
        self.stream = stream if stream is not None else sys.stdout
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
            eta = (self.total - done) / rate if rate > 0 else float("inf")
            print(f"[{self.source}] {done}/{self.total} episodes  {rate:.2f} episodes/s  "
                  f"ETA {format_duration(eta)}  running accuracy {100 * self.sum / done:.2f}%",
                  file=self.stream, flush=True)
