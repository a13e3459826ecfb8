"""ctx_tf.files: atomic writes leave the old file or the new one, never a part."""

import json
import os

import pytest

from ctx_tf import files


def test_atomic_write_text_bytes_and_json(tmp_path):
    files.atomic_write(tmp_path / "a.txt", "héllo\n")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    files.atomic_write(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    files.write_json(tmp_path / "c.json", {"b": 1, "a": [1, 2]})
    text = (tmp_path / "c.json").read_text()
    assert json.loads(text) == {"a": [1, 2], "b": 1}
    assert text.index('"a"') < text.index('"b"') and text.endswith("}\n")
    mode = os.stat(tmp_path / "a.txt").st_mode & 0o777
    assert mode != 0o600, "finished files get the usual mode, not mkstemp's"


def test_failed_write_keeps_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")

    def fail(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.atomic_write_with(target, fail)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
