"""The per-episode journal that lets a long evaluation survive a kill.

`<output_dir>/episodes.journal.jsonl` is append-only: a header line with the evaluation's
identity (checkpoint, seed, sources, split, image size, episode configuration, ...), then one
line per finished episode (`{"source", "record", "seconds"}`), each flushed and fsync'd before
the next episode starts. Rerunning the same command reads the complete lines back (a line cut
by the kill is dropped) and the protocol skips those episodes of each source's seeded stream,
so the results equal an uninterrupted run's. A journal of another evaluation is refused, naming
what differs. The results files are written last; then the journal is removed.
"""

import json
import os

from ctx_tf import files
from ctx_tf.errors import UserError

JOURNAL_NAME = "episodes.journal.jsonl"
FORMAT = "ctx_tf.evaluation.journal/1"


class JournalError(UserError, ValueError):
    """The journal in the output directory belongs to another evaluation, or is unreadable."""


def _canonical(value):
    return json.loads(json.dumps(value, sort_keys=True, default=str))


class Journal:
    """Episodes already evaluated (`done`) and an `append` for the next ones.

    Args:
      path: the journal file (local file systems only: appends must be durable).
      identity: a JSON-able mapping; a journal with another identity is refused.
    """

    def __init__(self, path, identity):
        self.path = str(path)
        self.identity = _canonical(identity)
        self.done = {}  # source -> [(record, seconds), ...] in episode order
        if os.path.exists(self.path):
            self._read()

    @property
    def resumed(self):
        return sum(len(v) for v in self.done.values())

    def _read(self):
        with open(self.path, "rb") as f:
            data = f.read()
        complete = data[:data.rfind(b"\n") + 1]  # a line cut by a kill ends without "\n"
        lines = complete.decode("utf-8").splitlines()
        try:
            header = json.loads(lines[0]) if lines else None
        except json.JSONDecodeError:
            header = None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise JournalError(f"{self.path} is not an evaluation journal; remove it or choose "
                               "another --output_dir")
        theirs = header.get("identity", {})
        if theirs != self.identity:
            keys = sorted(k for k in set(theirs) | set(self.identity)
                          if theirs.get(k) != self.identity.get(k))
            raise JournalError(
                f"{self.path} holds the episodes of another evaluation (it differs in: "
                f"{', '.join(keys)}); rerun that command to resume it, or remove the journal "
                "or choose another --output_dir to start afresh")
        for number, line in enumerate(lines[1:], start=2):
            try:
                entry = json.loads(line)
                self.done.setdefault(entry["source"], []).append(
                    (entry["record"], float(entry["seconds"])))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                raise JournalError(f"{self.path}, line {number}: not a journal entry; remove "
                                   "the journal to start afresh") from None
        if len(complete) != len(data):
            with open(self.path, "r+b") as f:  # drop the cut line before appending
                f.truncate(len(complete))

    def _write_line(self, payload):
        if not os.path.exists(self.path):
            # Made with the first finished episode, so a run that fails before any episode
            # (e.g. on a damaged class file) leaves no folder or file behind.
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            files.atomic_write(self.path, json.dumps(
                {"format": FORMAT, "identity": self.identity}, sort_keys=True) + "\n")
        # The one in-place write of the project: an append, durable before the next episode.
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(payload, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def records(self, source):
        return [record for record, _ in self.done.get(source, [])]

    def seconds(self, source):
        return sum(seconds for _, seconds in self.done.get(source, []))

    def append(self, source, record, seconds):
        self._write_line({"source": source, "record": record, "seconds": seconds})
        self.done.setdefault(source, []).append((record, seconds))

    def remove(self):
        """Called once the results are written: they hold every episode."""
        if os.path.exists(self.path):
            os.remove(self.path)
