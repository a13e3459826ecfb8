"""Shared test helpers: the official facts as files, ../shared (the reference material beside
the checkout), the random seed of a test and an empty gin configuration."""

import json
import os
import pathlib
import re

import gin
import pytest

from ctx_tf.data import facts

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# The commands' tests check the default, quiet behaviour (no TensorFlow or gin log line on a
# good run): a log level or verbosity set in the caller's environment would change it.
for _variable in ("TF_CPP_MIN_LOG_LEVEL", "CTX_TF_VERBOSE"):
    os.environ.pop(_variable, None)
# The reference material lives beside the checkout; a user's clone does not have it.
SHARED_DIR = pathlib.Path(os.environ.get("CTX_TF_SHARED_DIR", REPO_ROOT.parent / "shared"))
# Replays a run: the seed a failing test printed.
SEED_VARIABLE = "CTX_TF_TEST_SEED"


def shared_path(*parts):
    """Returns SHARED_DIR/parts, or skips the calling test when it is absent.

    Only for what cannot live in the repository (the real Omniglot images, the official
    converter's records); the official spec files are `ctx_tf.data.facts` (see
    `official_spec_dir`)."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"reference material {path} is absent (it lives in ../shared beside a development "
            "checkout; set CTX_TF_SHARED_DIR to point elsewhere)"
        )
    return path


def official_spec_dir(root, name, spec=None):
    """`<root>/<name>/dataset_spec.json`, as a records directory holds it; returns the directory.

    The file holds `spec` (a dict, or JSON text), by default the official spec of `name` from
    the shipped facts (equal to the official file, see tests/data/test_facts.py)."""
    directory = pathlib.Path(root) / name
    directory.mkdir(parents=True, exist_ok=True)
    if spec is None:
        spec = facts.dataset_spec(name)
    text = spec if isinstance(spec, str) else json.dumps(spec, indent=2)
    (directory / "dataset_spec.json").write_text(text, encoding="utf-8")
    return directory


def official_sha256(filename):
    """The sha256 of an official file (e.g. "dtd_splits.json"), as the facts' NOTICE records
    it (tools/derive_benchmark_facts.py computed it from the file itself)."""
    notice = (REPO_ROOT / "ctx_tf" / "data" / "facts" / "NOTICE").read_text(encoding="utf-8")
    found = re.search(rf"/{re.escape(filename)} \(([0-9a-f]{{64}})\)", notice)
    assert found, f"the facts' NOTICE lists no {filename}"
    return found.group(1)


@pytest.fixture
def rng_seed():
    """A fresh seed per run, printed on failure so the run can be repeated: set
    CTX_TF_TEST_SEED=<seed> to replay it."""
    replay = os.environ.get(SEED_VARIABLE)
    seed = int(replay) if replay else int.from_bytes(os.urandom(4), "little")
    print(f"random seed for this test: {seed} (replay: {SEED_VARIABLE}={seed})")
    return seed



@pytest.fixture
def clean_gin():
    """An empty gin configuration for the test, cleared again after it (a module whose every
    test binds gin uses it with `pytestmark = pytest.mark.usefixtures("clean_gin")`)."""
    gin.clear_config()
    yield
    gin.clear_config()
