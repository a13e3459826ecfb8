"""Tests of the writer command, python -m ctx_tf.data.writer: writing an image folder tree and
--check."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from PIL import Image

from ctx_tf.data import writer
from ctx_tf.data.dataset_spec import DatasetSpecError, load_dataset_spec
from ctx_tf.data.writing.arrays import write_source_from_arrays
from ctx_tf.data.writing.errors import SourceWriteError


def _make_bilevel_tree(root):
    """Three superclasses of 2, 1 and 3 classes, three small images each (PNG and JPEG)."""
    rng = np.random.RandomState(1)
    layout = {"alpha": ["x1", "x2"], "beta": ["y1"], "gamma": ["z1", "z2", "z3"]}
    for sc, classes in layout.items():
        for c in classes:
            (root / sc / c).mkdir(parents=True)
            for k in range(3):
                img = Image.fromarray(np.kron(rng.randint(0, 256, (4, 4), dtype=np.uint8),
                                              np.ones((4, 4), np.uint8)))
                img.save(root / sc / c / (f"img{k}.png" if k else f"img{k}.jpg"))


def _cli(argv):
    fv = writer.define_flags(flags.FlagValues())
    fv(["writer"] + argv)
    return writer.run_cli(fv)


def test_cli_write_and_check(tmp_path, capsys):
    _make_bilevel_tree(tmp_path / "imgs")
    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps({"train": ["gamma", "beta"], "valid": [], "test": ["alpha"]}))
    assert _cli([f"--images_root={tmp_path / 'imgs'}", f"--records_root={tmp_path / 'rec'}",
                 "--name=cli", "--bilevel", "--seed=1", "--valid_fraction=0.34",
                 "--test_fraction=0.34"]) == 0
    out = capsys.readouterr().out
    assert "6 classes, 18 images" in out and "VALID: 2 classes in 1 superclasses" in out
    assert _cli([f"--images_root={tmp_path / 'imgs'}", f"--records_root={tmp_path / 'rec'}",
                 "--name=cli2", "--bilevel", f"--splits_file={splits}", "--invert"]) == 0
    spec = load_dataset_spec(tmp_path / "rec" / "cli2")
    assert spec.class_names[0] == "gamma-z1" and list(spec.get_classes("TEST")) == [4, 5]
    (tmp_path / "rec" / "cli2" / "0.tfrecords").unlink()
    assert _cli([f"--check={tmp_path / 'rec' / 'cli2'}"]) == 1
    assert "0.tfrecords: missing (class 0)" in capsys.readouterr().out
    # The cli source checked against cli2's spec: same classes, different splits.
    assert _cli([f"--check={tmp_path / 'rec' / 'cli'}",
                 f"--reference_spec={tmp_path / 'rec' / 'cli2' / 'dataset_spec.json'}"]) == 1
    assert "reference spec" in capsys.readouterr().out


def test_cli_user_mistakes_name_the_culprit(tmp_path):
    with pytest.raises(DatasetSpecError, match=f"{tmp_path / 'none'}: no such source folder"):
        _cli([f"--check={tmp_path / 'none'}"])
    with pytest.raises(SourceWriteError, match="--reference_spec only goes with"):
        _cli([f"--reference_spec={tmp_path}"])
    with pytest.raises(SourceWriteError, match="missing flags: --images_root"):
        _cli([f"--records_root={tmp_path}", "--name=x"])


@pytest.mark.slow
def test_cli_subprocess(tmp_path):
    arrays = [np.full((2, 8, 8), 100 * c, np.uint8) for c in (1, 2)]
    write_source_from_arrays(tmp_path, "sub", arrays, splits=(1, 1, 0))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-m", "ctx_tf.data.writer",
                          f"--check={tmp_path / 'sub'}"],
                         capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    assert ": OK; 2 classes" in out.stdout
    out = subprocess.run([sys.executable, "-m", "ctx_tf.data.writer",
                          f"--check={tmp_path / 'missing'}"],
                         capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        f"ctx_tf.data.writer: error: {tmp_path / 'missing'}: no such source folder (expected a "
        "folder holding dataset_spec.json and the class record files)")
    assert "Traceback" not in out.stderr
