"""Tests of ctx_tf.data.sources: the Omniglot converter against the official records."""

import io
import json
import os
import pathlib
import struct

import numpy as np
import PIL
import pytest
import tensorflow as tf
from PIL import Image, features

from ctx_tf.data import sources, writer
from ctx_tf.data.dataset_spec import load_dataset_spec
from tests.conftest import shared_path

# The environment of the official records (see their README): same Pillow and libjpeg-turbo
# give byte-identical JPEGs.
OFFICIAL_PILLOW = "13.0.0"
OFFICIAL_LIBJPEG_TURBO = "3.2.0"


def _same_jpeg_encoder():
    return (PIL.__version__ == OFFICIAL_PILLOW
            and features.version("libjpeg_turbo") == OFFICIAL_LIBJPEG_TURBO)


def _records(path):
    """The Examples of a TFRecord file. Framing is parsed here (no CRC check): one
    tf.data pipeline per file costs ~0.1 s, too much for the hundreds of files compared."""
    data = pathlib.Path(path).read_bytes()
    out, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        pos += 12
        out.append(tf.train.Example.FromString(data[pos:pos + length]))
        pos += length + 4
    assert pos == len(data), path
    return out


def _decode(example):
    return np.asarray(Image.open(io.BytesIO(example.features.feature["image"].bytes_list.value[0])))


# ----------------------------------------------------------------- synthetic Omniglot


def _fake_omniglot(root, drawers=3, size=9):
    """A tiny Omniglot in the npz + index format: all five validation alphabets, two more
    background alphabets (listed out of sorted order) and two evaluation alphabets."""
    rng = np.random.RandomState(0)
    background = [("Zeta", 2), ("Blackfoot_(Canadian_Aboriginal_Syllabics)", 1), ("Alpha", 3),
                  ("Ojibwe_(Canadian_Aboriginal_Syllabics)", 1), ("Tagalog", 1),
                  ("Inuktitut_(Canadian_Aboriginal_Syllabics)", 2), ("Alphabet_of_the_Magi", 1)]
    evaluation = [("Yod", 2), ("Bet", 1)]
    index = []
    for set_name, alphabets in (("images_background", background),
                                ("images_evaluation", evaluation)):
        rows = sum(n for _, n in alphabets)
        images = rng.rand(rows, drawers, size, size) > 0.3
        np.savez_compressed(root / f"{set_name}.npz", images=images,
                            labels=np.repeat(np.arange(rows)[:, None], drawers, 1))
        row = 0
        for name, n in alphabets:
            index.append({"alphabet": name, "set": set_name, "npz_file": f"{set_name}.npz",
                          "npz_first_row": row, "num_characters": n})
            row += n
    (root / "omniglot_index.json").write_text(json.dumps({"alphabets": index}))
    return root


@pytest.mark.compat
def test_fake_omniglot_order_inversion_and_spec(tmp_path):
    raw = _fake_omniglot(tmp_path)
    report = sources.convert_omniglot(raw, tmp_path / "rec")
    names = [c.name for c in sources.omniglot_classes(raw)]
    assert names == ["Alpha-character01", "Alpha-character02", "Alpha-character03",
                     "Zeta-character01", "Zeta-character02",
                     "Blackfoot_(Canadian_Aboriginal_Syllabics)-character01",
                     "Ojibwe_(Canadian_Aboriginal_Syllabics)-character01",
                     "Inuktitut_(Canadian_Aboriginal_Syllabics)-character01",
                     "Inuktitut_(Canadian_Aboriginal_Syllabics)-character02",
                     "Tagalog-character01", "Alphabet_of_the_Magi-character01",
                     "Bet-character01", "Yod-character01", "Yod-character02"]
    assert report.classes_per_split == {"TRAIN": 5, "VALID": 6, "TEST": 3}
    assert report.superclasses_per_split == {"TRAIN": 2, "VALID": 5, "TEST": 2}
    spec = load_dataset_spec(tmp_path / "rec" / "omniglot")
    assert spec.num_classes == 14 and list(spec.get_classes("TEST")) == [11, 12, 13]
    assert writer.check_source(tmp_path / "rec" / "omniglot").ok
    # Class 3 = Zeta-character01 = background row 0; images are inverted (ink -> white).
    bg = np.load(raw / "images_background.npz")["images"]
    for drawer, ex in enumerate(_records(tmp_path / "rec" / "omniglot" / "3.tfrecords")):
        assert ex.features.feature["label"].int64_list.value == [3]
        img = _decode(ex)
        assert img.shape == (9, 9, 3)
        np.testing.assert_array_equal(img[..., 0] > 127, ~bg[0, drawer])
    # Class 12 = Yod-character01 = evaluation row 0.
    ev = np.load(raw / "images_evaluation.npz")["images"]
    img = _decode(_records(tmp_path / "rec" / "omniglot" / "12.tfrecords")[1])
    np.testing.assert_array_equal(img[..., 0] > 127, ~ev[0, 1])


def test_fake_omniglot_slices_and_overwrite(tmp_path):
    raw = _fake_omniglot(tmp_path)
    sources.convert_omniglot(raw, tmp_path / "rec", alphabets=["Tagalog"], classes=[0])
    out = tmp_path / "rec" / "omniglot"
    assert sorted(os.listdir(out)) == ["0.tfrecords", "9.tfrecords"]  # no spec for a slice
    with pytest.raises(FileExistsError, match="overwrite"):
        sources.convert_omniglot(raw, tmp_path / "rec")
    (out / "20.tfrecords").write_bytes(b"stale")
    report = sources.convert_omniglot(raw, tmp_path / "rec", overwrite=True)
    assert report.num_classes == 14 and writer.check_source(out).ok
    with pytest.raises(sources.SourceConversionError, match="unknown Omniglot alphabet 'Nope'"):
        sources.convert_omniglot(raw, tmp_path / "x", alphabets=["Nope"])
    with pytest.raises(sources.SourceConversionError, match="class id 99"):
        sources.convert_omniglot(raw, tmp_path / "x", classes=[99])


def test_fake_omniglot_bad_index_names_file_and_field(tmp_path):
    raw = _fake_omniglot(tmp_path)
    index = json.loads((raw / "omniglot_index.json").read_text())
    del index["alphabets"][2]["npz_first_row"]
    (raw / "omniglot_index.json").write_text(json.dumps(index))
    with pytest.raises(sources.SourceConversionError,
                       match=r"omniglot_index\.json: alphabets\[2\] has no field 'npz_first_row'"):
        sources.convert_omniglot(raw, tmp_path / "rec")
    index["alphabets"][2]["npz_first_row"] = 50
    (raw / "omniglot_index.json").write_text(json.dumps(index))
    with pytest.raises(sources.SourceConversionError,
                       match=r"images_background\.npz: class 0 \(Alpha-character01\) needs row 50"):
        sources.omniglot_dataset_spec(raw)
    assert not (tmp_path / "rec").exists()


def test_cli_in_process(tmp_path, capsys):
    from absl import flags
    raw = _fake_omniglot(tmp_path)
    fv = sources.define_flags(flags.FlagValues())
    fv(["sources", "--source=omniglot", f"--raw_dir={raw}", f"--records_root={tmp_path / 'r'}"])
    assert sources.run_cli(fv) == 0
    assert "14 classes, 42 images" in capsys.readouterr().out


# ----------------------------------------------------------------- real Omniglot


def test_omniglot_spec_equals_official():
    raw = shared_path("data", "omniglot")
    official = shared_path("data", "official_records", "omniglot", "dataset_spec.json")
    text = official.read_text()
    # The official records were converted with --records_root=. (path "./omniglot").
    assert writer.spec_to_json(sources.omniglot_dataset_spec(raw, ".")) == text
    ours = writer.spec_to_json(sources.omniglot_dataset_spec(raw, "/some/where"))
    diff = [(a, b) for a, b in zip(ours.splitlines(), text.splitlines()) if a != b]
    assert diff == [('  "path": "/some/where/omniglot",', '  "path": "./omniglot",')]


def test_omniglot_order_matches_index_table():
    raw = shared_path("data", "omniglot")
    table = json.loads((raw / "omniglot_index.json").read_text())["meta_dataset_class_order"]
    classes = sources.omniglot_classes(raw)
    assert [(c.class_id, c.name, c.npz_file, c.npz_row) for c in classes] == [
        (t["class_id"], t["name"], t["npz_file"], t["npz_row"]) for t in table]


def _compare_with_official(ours_dir, official_dir, class_ids):
    """Returns the number of byte-identical files; asserts labels and pixels."""
    identical = 0
    for cid in class_ids:
        ours, theirs = ours_dir / f"{cid}.tfrecords", official_dir / f"{cid}.tfrecords"
        a, b = _records(ours), _records(theirs)
        assert len(a) == len(b) == 20
        for ea, eb in zip(a, b):
            assert ea.features.feature["label"].int64_list.value == [cid]
            assert eb.features.feature["label"].int64_list.value == [cid]
            ia, ib = _decode(ea).astype(int), _decode(eb).astype(int)
            assert np.abs(ia - ib).mean() < 1.0
            np.testing.assert_array_equal(ia > 127, ib > 127)
        identical += ours.read_bytes() == theirs.read_bytes()
    return identical


def test_omniglot_slice_matches_official_records(tmp_path):
    raw = shared_path("data", "omniglot")
    official = shared_path("data", "official_records", "omniglot")
    # One alphabet per split, near the start of the npz files (only the rows up to the last
    # wanted one are inflated): Arcadian (TRAIN), Blackfoot (VALID), Angelic (TEST).
    alphabets = ["Arcadian", "Blackfoot_(Canadian_Aboriginal_Syllabics)", "Angelic"]
    report = sources.convert_omniglot(raw, tmp_path, alphabets=alphabets)
    assert report.classes_per_split == {"TRAIN": 26, "VALID": 14, "TEST": 20}
    spec = load_dataset_spec(official)
    ids = [cid for cid in range(spec.num_classes)
           if spec.class_names[cid].rsplit("-", 1)[0] in alphabets]
    assert len(ids) == 60
    assert sorted(int(f.split(".")[0]) for f in os.listdir(tmp_path / "omniglot")) == ids
    identical = _compare_with_official(tmp_path / "omniglot", official, ids)
    print(f"byte-identical record files: {identical}/{len(ids)} "
          f"(Pillow {PIL.__version__}, libjpeg-turbo {features.version('libjpeg_turbo')})")
    if _same_jpeg_encoder():
        assert identical == len(ids)


@pytest.mark.slow
def test_omniglot_full_conversion_matches_official(tmp_path, monkeypatch):
    raw = shared_path("data", "omniglot")
    official = shared_path("data", "official_records", "omniglot")
    monkeypatch.chdir(tmp_path)  # mimic the official run: --records_root=.
    report = sources.convert_omniglot(raw, ".")
    assert report.classes_per_split == {"TRAIN": 883, "VALID": 81, "TEST": 659}
    assert report.num_images == 32460
    ours = tmp_path / "omniglot"
    assert (ours / "dataset_spec.json").read_text() == (official / "dataset_spec.json").read_text()
    assert writer.check_source(ours).ok
    if _same_jpeg_encoder():
        for cid in range(1623):
            name = f"{cid}.tfrecords"
            assert (ours / name).read_bytes() == (official / name).read_bytes(), name
    else:
        _compare_with_official(ours, official, range(0, 1623, 40))
