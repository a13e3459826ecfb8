"""Tests of ctx_tf.data.simclr_preview: the PNG grid of one SimCLR episode and its CLI."""

import numpy as np
import pytest
from absl import flags
from PIL import Image

from ctx_tf.data import simclr, simclr_preview
from ctx_tf.errors import UserError
from tests.data.helpers import write_tiny_source
from tests.data.simclr.helpers import make_episode


def _png_size(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_save_episode_grid(tmp_path):
    size = 28
    episode = make_episode([3, 1, 4, 2], [2, 3, 1, 2], [40, 7, 123, 5], size=size)
    converted = simclr.to_simclr_episode(episode, seed=[1, 2])
    path = tmp_path / "grid.png"
    rows = len(converted.query_labels)  # 6
    shape = simclr_preview.save_episode_grid(converted, path, max_rows=20)
    width, height = _png_size(path)
    assert (width, height) == simclr_preview.grid_size(rows)
    assert shape == (height, width)
    assert height > simclr_preview.grid_size(rows - 1)[1]  # one more row, a taller figure
    pixels = np.asarray(Image.open(path).convert("RGB"), np.float64)
    assert pixels.std() > 10  # images and titles drawn, not a blank canvas
    # Row limit.
    simclr_preview.save_episode_grid(converted, tmp_path / "small.png", max_rows=2)
    assert _png_size(tmp_path / "small.png") == simclr_preview.grid_size(2)


def test_save_episode_grid_needs_a_query(tmp_path):
    episode = make_episode([3, 1], [2, 3], [40, 7], size=16)
    with pytest.raises(ValueError, match="no query images"):
        simclr_preview.save_episode_grid(episode, tmp_path / "x.png", max_rows=0)
    assert not (tmp_path / "x.png").exists()


def test_cli_writes_a_grid_of_a_real_source(tmp_path, capsys):
    write_tiny_source(tmp_path, "toy", images_per_class=12, splits=(6, 3, 3), size=20)
    out = tmp_path / "grid.png"
    assert simclr_preview.run_cli(_flags(
        "--records_root_dir", str(tmp_path), "--dataset", "toy", "--out", str(out),
        "--image_size", "28", "--max_rows", "4")) == 0
    width, height = _png_size(out)
    assert (width, height) == simclr_preview.grid_size(4)
    assert f"wrote {out} ({width}x{height}): 4 of" in capsys.readouterr().out


def _flags(*args):
    fv = simclr_preview.define_flags(flags.FlagValues())
    fv(["simclr_preview", *args])
    return fv


def test_cli_names_a_missing_source(tmp_path):
    with pytest.raises(UserError) as info:
        simclr_preview.run_cli(_flags("--records_root_dir", str(tmp_path), "--dataset", "nope"))
    assert "nope" in str(info.value)
    assert not (tmp_path / "simclr_episode.png").exists()
