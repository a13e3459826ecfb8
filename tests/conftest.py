"""Shared test helpers: locating ../shared (the reference material beside the checkout)."""

import os
import pathlib
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# The commands' tests check the default, quiet behaviour (no TensorFlow or gin log line on a
# good run): a log level or verbosity set in the caller's environment would change it.
for _variable in ("TF_CPP_MIN_LOG_LEVEL", "CTX_TF_VERBOSE"):
    os.environ.pop(_variable, None)
# The reference material lives beside the checkout; a user's clone does not have it.
SHARED_DIR = pathlib.Path(os.environ.get("CTX_TF_SHARED_DIR", REPO_ROOT.parent / "shared"))


def shared_path(*parts):
    """Returns SHARED_DIR/parts, or skips the calling test when it is absent."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"reference material {path} is absent (it lives in ../shared beside a development "
            "checkout; set CTX_TF_SHARED_DIR to point elsewhere)"
        )
    return path


@pytest.fixture
def rng_seed():
    """A fresh seed per run, printed on failure so the run can be repeated."""
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"random seed for this test: {seed}")
    return seed


_EXIT_STATUS = []


def pytest_sessionfinish(session, exitstatus):
    _EXIT_STATUS.append(int(exitstatus))


def pytest_unconfigure(config):
    """Ends the test process once pytest has reported, skipping interpreter finalization.

    A test process builds hundreds of tf.data pipelines whose Python generators run in
    tf.data threads; at interpreter exit TensorFlow can wait forever for one of those threads
    while the exiting thread holds the interpreter (seen once: a finished suite, "629 passed",
    that never exited). The commands themselves exit normally (their subprocess tests have
    timeouts); only this long-lived process is cut short, with pytest's own exit status.
    """
    if _EXIT_STATUS and not hasattr(config, "workerinput"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])
