"""The package surface: lazy public names, one Keras import site."""

import pathlib
import re
import subprocess
import sys

import pytest

import ctx_tf

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.compat
def test_public_names_resolve():
    for name in ctx_tf.__all__:
        assert getattr(ctx_tf, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        ctx_tf.nothing  # noqa: B018


def test_import_is_cheap():
    code = "import sys, ctx_tf; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_keras_is_imported_at_one_site_only():
    """Keras 2 comes from tf_keras through ctx_tf/keras.py; no tf.keras, no Keras 3, no addons."""
    offenders = []
    for path in (ROOT / "ctx_tf").rglob("*.py"):
        text = path.read_text()
        rel = path.relative_to(ROOT)
        if str(rel) != "ctx_tf/keras.py" and re.search(r"^\s*(import|from)\s+tf_keras\b", text,
                                                       re.M):
            offenders.append(f"{rel}: imports tf_keras directly")
        if re.search(r"\btf\.keras\.\w|^\s*import keras\b|^\s*from keras\b", text, re.M):
            offenders.append(f"{rel}: uses tf.keras or Keras 3")
        if "tensorflow_addons" in text or "gin.tf" in text:
            offenders.append(f"{rel}: uses tensorflow_addons or gin.tf")
    assert not offenders, offenders
