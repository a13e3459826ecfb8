"""One evaluation, start to finish: what validation, the final test of `python -m ctx_tf.train`
and `python -m ctx_tf.evaluate` all do.

An `Evaluator` runs the protocol (`protocol.evaluate`) on an `EvaluationSetup` with progress
lines (done/total, episodes/s, ETA, running accuracy) and a `Journal` in its output folder, so
a killed evaluation resumes where it stopped; `write` writes the results files (results.json
last) and removes the journal. `model_section` and `environment_section` are the `model` and
`environment` entries of every results.json.

The journal, `<output_dir>/episodes.journal.jsonl`, is append-only: a header line with the evaluation's
identity (checkpoint, seed, sources, split, image size, episode configuration, ...), then one
line per finished episode (`{"source", "record", "seconds"}`), each flushed and fsync'd before
the next episode starts. Rerunning the same command reads the complete lines back (a line cut
by the kill is dropped) and the protocol skips those episodes of each source's seeded stream,
so the results equal an uninterrupted run's. A journal of another evaluation is refused, naming
what differs. The results files are written last; then the journal is removed.
"""

import json
import os

import tensorflow as tf

import ctx_tf
from ctx_tf import files
from ctx_tf import progress as progress_lib
from ctx_tf.errors import UserError
from ctx_tf.evaluation import leaderboard
from ctx_tf.evaluation import protocol
from ctx_tf.evaluation import results as results_lib
from ctx_tf.evaluation.floor import FLOOR_NAME

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
      replace_stale: a journal of another identity is removed instead (validation during
        training: the journal of an earlier step's validation is of no use).
    """

    def __init__(self, path, identity, replace_stale=False):
        self.path = str(path)
        self.identity = _canonical(identity)
        self.done = {}  # source -> [(record, seconds), ...] in episode order
        if os.path.exists(self.path):
            try:
                self._read()
            except JournalError:
                if not replace_stale:
                    raise
                self.done = {}
                os.remove(self.path)

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


def model_section(name, learner=None, checkpoint=None, checkpoint_info=None, gin_config=(),
                  gin_bindings=(), train_datasets=None, floor_only=False):
    """The `model` entry of results.json: what was evaluated, from which checkpoint and
    configuration, trained on which datasets (and so in which leaderboard setting:
    `leaderboard.training_setting`; None when unknown). The raw-pixel floor (`floor_only`)
    is trained on nothing."""
    if floor_only:
        train_datasets = []
    section = {
        "name": FLOOR_NAME if floor_only else name,
        "learner": None if floor_only or learner is None else type(learner).__name__,
        "checkpoint": checkpoint,
        "checkpoint_info": dict(checkpoint_info or {}),
        "gin_config": [str(path) for path in gin_config],
        "gin_bindings": list(gin_bindings),
        "train_datasets": None if train_datasets is None else list(train_datasets),
        "training_setting": (None if train_datasets is None
                             else leaderboard.training_setting(train_datasets)),
    }
    if floor_only:
        section["floor_only"] = True
    return section


def environment_section():
    """The `environment` entry of results.json: the versions that produced it."""
    return {"tensorflow": tf.__version__, "ctx_tf": ctx_tf.__version__}


class Evaluator:
    """The evaluation of `setup` into `output_dir`.

    Args:
      setup: a `protocol.EvaluationSetup`.
      output_dir: where the journal and the results files go (a journal on local file
        systems only: its appends must be durable).
      identity: what besides `setup` decides the results (checkpoint, step, gin files...): a
        journal of another setup or identity is refused (`replace_stale`: replaced).
      log: where one-line messages (classes per source, results, a resume) go.
      progress_every_seconds: seconds between progress lines (the first and the last episode
        of each source are always shown).
      progress_log: where the progress lines go (default: `log`).
      journal: False: no journal (e.g. the non-chief workers of a multi-worker run).
    """

    def __init__(self, setup, output_dir, identity=None, log=print,
                 progress_every_seconds=10.0, journal=True, replace_stale=False,
                 progress_log=None):
        self.setup = setup
        self.output_dir = str(output_dir)
        self.log = log
        self.progress = progress_lib.Progress(every_seconds=progress_every_seconds,
                                              log=progress_log or log)
        self.journal = None
        if journal and "://" not in self.output_dir:
            self.journal = Journal(
                os.path.join(self.output_dir, JOURNAL_NAME),
                dict(protocol.run_identity(setup), **(identity or {})),
                replace_stale=replace_stale)

    def evaluate(self, learner=None, predict_fn=None, episodes_fn=None, floor=True,
                 floor_only=False):
        """The protocol's results mapping (no model section), resumed from the journal."""
        return protocol.evaluate(learner, self.setup, progress=self.progress, log=self.log,
                                 predict_fn=predict_fn, episodes_fn=episodes_fn, floor=floor,
                                 floor_only=floor_only, journal=self.journal)

    def write(self, results, published=(), setting=None):
        """Writes the results files (results.json last), then removes the journal: the
        results hold every episode. Returns the paths written."""
        paths = results_lib.write_results(self.output_dir, results, published=published,
                                          setting=setting)
        if self.journal is not None:
            self.journal.remove()
        return paths
