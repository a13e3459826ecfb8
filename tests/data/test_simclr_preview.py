"""Tests of ctx_tf.data.simclr_preview: the PNG grid of one SimCLR episode and its CLI."""

import struct
import zlib

import numpy as np
import pytest
from absl import flags
from PIL import Image

from ctx_tf.data import simclr, simclr_preview, writer
from ctx_tf.errors import UserError
from tests.data.test_simclr import _make_episode



def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    crc = struct.unpack(">I", data[29:33])[0]
    assert crc == zlib.crc32(data[12:29]) & 0xFFFFFFFF
    return width, height


def test_save_episode_grid(tmp_path):
    size = 28
    episode = _make_episode([3, 1, 4, 2], [2, 3, 1, 2], [40, 7, 123, 5], size=size)
    converted = simclr.to_simclr_episode(episode, seed=[1, 2])
    path = tmp_path / "grid.png"
    rows = len(converted.query_labels)  # 6
    shape = simclr_preview.save_episode_grid(converted, path, max_rows=20)
    width, height = _png_size(path)
    assert (width, height) == (2 * size + 3 * 2, rows * size + (rows + 1) * 2)
    assert shape == (height, width)
    pixels = np.asarray(Image.open(path))
    # Left of row r: the support image the query was copied from; right: the query.
    expected_support = np.round((converted.support_images.numpy() + 1) * 127.5).astype(np.uint8)
    expected_query = np.round((converted.query_images.numpy() + 1) * 127.5).astype(np.uint8)
    for r, source in enumerate(converted.query_labels.numpy()):
        top = 2 + r * (size + 2)
        left = pixels[top : top + size, 2 : 2 + size]
        right = pixels[top : top + size, 4 + size : 4 + 2 * size]
        np.testing.assert_array_equal(left, expected_support[source])
        np.testing.assert_array_equal(right, expected_query[r])
    # Row limit.
    simclr_preview.save_episode_grid(converted, tmp_path / "small.png", max_rows=2)
    assert _png_size(tmp_path / "small.png") == (2 * size + 6, 2 * size + 6)


def test_cli_writes_a_grid_of_a_real_source(tmp_path, capsys):
    rng = np.random.RandomState(0)
    arrays = [rng.randint(0, 256, size=(12, 20, 20, 3), dtype=np.uint8) for _ in range(12)]
    writer.write_source_from_arrays(tmp_path, "toy", arrays, splits=(6, 3, 3))
    out = tmp_path / "grid.png"
    assert simclr_preview.run_cli(_flags(
        "--records_root_dir", str(tmp_path), "--dataset", "toy", "--out", str(out),
        "--image_size", "28", "--max_rows", "4")) == 0
    width, height = _png_size(out)
    assert (width, height) == (2 * 28 + 6, 4 * 28 + 5 * 2)
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
