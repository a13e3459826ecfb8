"""Shared test helpers: locating ../shared (the reference material beside the checkout)."""

import os
import pathlib

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
