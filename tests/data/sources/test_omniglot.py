"""Tests of ctx_tf.data.sources: the Omniglot converter against the official records."""

import io
import json
import os
import pathlib
import re
import struct
import warnings
import zipfile

import numpy as np
import PIL
import pytest
import tensorflow as tf
from PIL import Image, features

from ctx_tf.data.checking.consistency import check_source
from ctx_tf.data.dataset_spec import load_dataset_spec
from ctx_tf.data.sources import __main__ as cli
from ctx_tf.data.sources import omniglot, omniglot_raw
from ctx_tf.data.writing import image_encoding
from ctx_tf.data.writing import spec_writer
from ctx_tf.data.writing.errors import SourceConversionError
from tests.conftest import shared_path
from tests.data.sources.raw_trees import omniglot as omniglot_tree

# The environment of the official records (see their README): same Pillow and libjpeg-turbo
# give byte-identical JPEGs.
OFFICIAL_PILLOW = "13.0.0"
OFFICIAL_LIBJPEG_TURBO = "3.2.0"


class JpegEncoderWarning(UserWarning):
    """Byte identity with the official records was not checked (another JPEG encoder)."""


def _same_jpeg_encoder():
    """True with the official records' encoder; otherwise warns (the warning is part of the
    test's outcome) that only pixels are compared."""
    ours = (PIL.__version__, features.version("libjpeg_turbo"))
    if ours == (OFFICIAL_PILLOW, OFFICIAL_LIBJPEG_TURBO):
        return True
    warnings.warn(JpegEncoderWarning(
        f"byte identity with the official Omniglot records NOT checked: Pillow {ours[0]} / "
        f"libjpeg-turbo {ours[1]} here, the records were encoded with Pillow {OFFICIAL_PILLOW} "
        f"/ libjpeg-turbo {OFFICIAL_LIBJPEG_TURBO}; only labels and pixels (mean difference "
        "< 1, same strokes) were compared"))
    return False


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


def _record_files(directory):
    """The class ids of the record files in `directory`, sorted."""
    return sorted(int(f.split(".")[0]) for f in os.listdir(directory) if f.endswith(".tfrecords"))


def _decode(example):
    return np.asarray(Image.open(io.BytesIO(example.features.feature["image"].bytes_list.value[0])))


# ----------------------------------------------------------------- synthetic Omniglot


@pytest.mark.compat
def test_fake_omniglot_order_inversion_and_spec(tmp_path):
    raw = omniglot_tree.write_packed(tmp_path)
    report = omniglot.convert(raw, tmp_path / "rec")
    names = [c.name for c in omniglot.list_classes(raw)]
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
    assert check_source(tmp_path / "rec" / "omniglot").ok
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


def test_fake_omniglot_slices_resume_and_overwrite(tmp_path):
    raw = omniglot_tree.write_packed(tmp_path)
    omniglot.convert(raw, tmp_path / "rec", alphabets=["Tagalog"], classes=[0])
    out = tmp_path / "rec" / "omniglot"
    assert sorted(p for p in os.listdir(out) if p.endswith(".tfrecords")) == [
        "0.tfrecords", "9.tfrecords"]
    assert not (out / "dataset_spec.json").exists()  # no spec for a slice
    # The full conversion keeps the slice's classes and writes the rest.
    report = omniglot.convert(raw, tmp_path / "rec")
    assert (report.classes_resumed, report.classes_written) == (2, 12)
    assert check_source(out).ok
    (out / "20.tfrecords").write_bytes(b"stale")
    report = omniglot.convert(raw, tmp_path / "rec", overwrite=True)
    assert (report.classes_resumed, report.num_classes) == (0, 14)
    assert check_source(out).ok
    with pytest.raises(SourceConversionError, match="unknown Omniglot alphabet 'Nope'"):
        omniglot.convert(raw, tmp_path / "x", alphabets=["Nope"])
    with pytest.raises(SourceConversionError, match="class id 99"):
        omniglot.convert(raw, tmp_path / "x", classes=[99])


def test_fake_omniglot_bad_index_names_file_and_field(tmp_path):
    raw = omniglot_tree.write_packed(tmp_path)
    index = json.loads((raw / "omniglot_index.json").read_text())
    del index["alphabets"][2]["npz_first_row"]
    (raw / "omniglot_index.json").write_text(json.dumps(index))
    with pytest.raises(SourceConversionError,
                       match=r"omniglot_index\.json: alphabets\[2\] has no field 'npz_first_row'"):
        omniglot.convert(raw, tmp_path / "rec")
    index["alphabets"][2]["npz_first_row"] = 50
    (raw / "omniglot_index.json").write_text(json.dumps(index))
    with pytest.raises(SourceConversionError,
                       match=r"images_background\.npz: class 0 \(Alpha-character01\) needs row 50"):
        omniglot.dataset_spec(raw)
    assert not (tmp_path / "rec").exists()


def test_cli_in_process(tmp_path, capsys):
    from absl import flags
    raw = omniglot_tree.write_packed(tmp_path)
    fv = cli.define_flags(flags.FlagValues())
    fv(["sources", "--source=omniglot", f"--raw_dir={raw}", f"--records_root={tmp_path / 'r'}"])
    assert cli.run_cli(fv) == 0
    assert "14 classes, 42 images" in capsys.readouterr().out


# ----------------------------------------------------------------- original layout helpers


def _png(drawing):
    """PNG bytes of a bool drawing (True = white paper), stored as the original release
    stores it: a 1-bit (mode "1") PNG, so decoding gives back exactly these pixels."""
    buf = io.BytesIO()
    image = Image.fromarray(np.asarray(drawing, dtype=bool))
    assert image.mode == "1"
    image.save(buf, format="PNG")
    return buf.getvalue()


def _write_layout(dest, members, form):
    """Writes ``members`` ({"images_background/<alphabet>/<character>/<file>": bytes, or
    "<...>/": None for an empty folder}) under ``dest`` as the two unzipped folders or as
    the two zip files of the original release. Zip members are stored in reverse name order
    (with folder entries, as in the release), so the converter's sorting is exercised."""
    dest = pathlib.Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if form == "folders":
        made = set()
        for name, data in members.items():
            folder = name if data is None else name.rsplit("/", 1)[0]
            if folder not in made:
                (dest / folder).mkdir(parents=True, exist_ok=True)
                made.add(folder)
            if data is not None:
                with open(dest / name, "wb") as f:
                    f.write(data)
        return dest
    assert form == "zip", form
    for set_name in omniglot_raw.SETS:
        names = [n for n in members if n.startswith(set_name + "/")]
        folders = {n.rsplit("/", 1)[0] + "/" for n in names if members[n] is not None}
        folders |= {n for n in names if members[n] is None}
        for folder in list(folders):  # and every parent folder
            parts = folder.rstrip("/").split("/")
            folders |= {"/".join(parts[:i]) + "/" for i in range(1, len(parts))}
        with zipfile.ZipFile(dest / f"{set_name}.zip", "w", zipfile.ZIP_DEFLATED) as z:
            for folder in sorted(folders):
                z.writestr(folder, b"")
            for name in sorted((n for n in names if members[n] is not None), reverse=True):
                z.writestr(name, members[name])
    return dest


def _fake_original_members(raw):
    """The fake Omniglot of ``omniglot_tree.write_packed(raw)`` in the original layout: character folders
    characterNN, files <global character id>_<drawer>.png (ids run on across both sets)."""
    index = json.loads((raw / "omniglot_index.json").read_text())["alphabets"]
    arrays = {s: np.load(raw / f"{s}.npz")["images"] for s in omniglot_raw.SETS}
    first_id = {"images_background": 1, "images_evaluation": 1 + len(arrays["images_background"])}
    members = {}
    for e in index:
        for k in range(e["num_characters"]):
            row = e["npz_first_row"] + k
            char_id = first_id[e["set"]] + row
            for d, drawing in enumerate(arrays[e["set"]][row]):
                name = f"{e['set']}/{e['alphabet']}/character{k + 1:02d}/{char_id:04d}_{d + 1:02d}.png"
                members[name] = _png(drawing)
    return members


def _tree_bytes(directory):
    return {p.name: p.read_bytes() for p in sorted(pathlib.Path(directory).iterdir())}


@pytest.mark.parametrize("form", ["folders", "zip"])
def test_fake_original_layout_equals_packed_form(tmp_path, form):
    """The original layout (folders or zips) gives byte for byte the output of the npz form
    for the same pixels: same class order, image order, JPEGs and spec."""
    packed = omniglot_tree.write_packed(tmp_path / "packed")
    omniglot.convert(packed, tmp_path / "from_npz", spec_path="./omniglot")
    raw = _write_layout(tmp_path / "raw", _fake_original_members(packed), form)
    assert omniglot_raw.detect_raw_form(raw).form == form
    # Fewer alphabets than the release's 30 + 20: converted, with a warning on the class ids.
    with pytest.warns(UserWarning, match=r"alphabets; the official release has 30 and 20"):
        report = omniglot.convert(raw, tmp_path / "from_original",
                                          spec_path="./omniglot")
    assert report.classes_per_split == {"TRAIN": 5, "VALID": 6, "TEST": 3}
    assert report.num_images == 42
    ours = _tree_bytes(tmp_path / "from_original" / "omniglot")
    assert len(ours) == 16 and ours == _tree_bytes(tmp_path / "from_npz" / "omniglot")
    classes = omniglot.list_classes(raw)
    assert classes[12].name == "Yod-character01"
    assert classes[12].image_files == ("0012_01.png", "0012_02.png", "0012_03.png")
    # A slice reads only its classes and keeps the official ids.
    omniglot.convert(raw, tmp_path / "slice", alphabets=["Tagalog"])
    assert _record_files(tmp_path / "slice" / "omniglot") == [9]


def test_raw_form_detection_preference_and_cli(tmp_path, capsys):
    from absl import flags
    raw = omniglot_tree.write_packed(tmp_path / "raw")  # npz form
    assert omniglot_raw.detect_raw_form(raw).form == "npz"
    members = _fake_original_members(raw)
    _write_layout(raw, members, "zip")
    found = omniglot_raw.detect_raw_form(raw)
    assert (found.form, found.ignored) == ("zip", ("npz",))
    _write_layout(raw, members, "folders")
    found = omniglot_raw.detect_raw_form(raw)
    assert (found.form, found.ignored) == ("folders", ("zip", "npz"))
    assert found.describe() == (
        f"Omniglot original folders in {raw} (images_background/, images_evaluation/); "
        "also present but ignored: original zip files (images_background.zip, "
        "images_evaluation.zip), packed arrays (images_background.npz, "
        "images_evaluation.npz, omniglot_index.json)")
    assert omniglot_raw.detect_raw_form(raw, "zip").ignored == ("folders", "npz")
    fv = cli.define_flags(flags.FlagValues())
    fv(["sources", "--source=omniglot", f"--raw_dir={raw}", f"--records_root={tmp_path / 'r'}"])
    assert cli.run_cli(fv) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"reading Omniglot original folders in {raw} ")
    assert "14 classes, 42 images" in out
    fv = cli.define_flags(flags.FlagValues())
    fv(["sources", "--source=omniglot", f"--raw_dir={tmp_path / 'nope'}", f"--records_root={tmp_path / 'r'}"])
    with pytest.raises(SourceConversionError, match="nope: the Omniglot raw folder does not"):
        cli.run_cli(fv)


def test_missing_raw_data_names_what_was_looked_for(tmp_path):
    raw = tmp_path / "raw"
    with pytest.raises(SourceConversionError,
                       match=re.escape(f"{raw}: the Omniglot raw folder does not exist")):
        omniglot.convert(raw, tmp_path / "rec")
    raw.mkdir()
    with pytest.raises(SourceConversionError) as e:
        omniglot.convert(raw, tmp_path / "rec")
    assert str(e.value) == (
        f"{raw}: no Omniglot data found; looked for original folders images_background/, "
        "images_evaluation/; or original zip files images_background.zip, "
        "images_evaluation.zip; or packed arrays images_background.npz, "
        "images_evaluation.npz, omniglot_index.json")
    # Only one of the two folders: the missing one is named.
    (raw / "images_background" / "Latin" / "character01").mkdir(parents=True)
    with pytest.raises(SourceConversionError,
                       match=re.escape(f"(incomplete original folders: {raw}/images_evaluation/ "
                                       "not found)") + "$"):
        omniglot.convert(raw, tmp_path / "rec")
    with pytest.raises(SourceConversionError,
                       match=re.escape(f"original zip files requested, but {raw}/images_"
                                       f"background.zip, {raw}/images_evaluation.zip not found")):
        omniglot.list_classes(raw, raw_form="zip")
    assert not (tmp_path / "rec").exists()


def _where(raw, form, member):
    """How an error names ``member`` ("images_background/A/..."): path or zip:member."""
    if form == "folders":
        return str(raw / member)
    set_name = member.split("/", 1)[0]
    return f"{raw / (set_name + '.zip')}:{member}"


@pytest.mark.parametrize("form", ["folders", "zip"])
def test_bad_original_layout_names_the_path(tmp_path, form):
    packed = omniglot_tree.write_packed(tmp_path / "packed")
    good = _fake_original_members(packed)
    yod2 = "images_evaluation/Yod/character02"

    def layout(name, members):
        return _write_layout(tmp_path / name, members, form)

    # A character folder with no images: found while listing, before anything is written.
    members = {n: d for n, d in good.items() if not n.startswith(yod2 + "/")}
    members[yod2 + "/"] = None
    raw = layout("empty", members)
    with pytest.raises(SourceConversionError) as e:
        omniglot.convert(raw, tmp_path / "rec")
    assert str(e.value) == f"{_where(raw, form, yod2)}: character folder with no images"
    assert not (tmp_path / "rec").exists()
    # A file that is no image: found when its class is converted, named and skipped; or
    # refused with strict, leaving nothing behind.
    raw = layout("text", {**good, yod2 + "/notes.txt": b"drawn by hand"})
    notes = _where(raw, form, yod2 + "/notes.txt")
    with pytest.raises(SourceConversionError,
                       match=re.escape(f"{notes}: unreadable image (UnidentifiedImageError")):
        omniglot.convert(raw, tmp_path / "rec", strict=True)
    assert not (tmp_path / "rec").exists()
    report = omniglot.convert(raw, tmp_path / "rec")
    assert report.num_images == 42 and [u[0] for u in report.unreadable] == [notes]
    assert notes in report.summary()
    assert (tmp_path / "rec" / "omniglot" / "conversion_report.txt").read_text().startswith(
        f"{notes}: UnidentifiedImageError")
    assert omniglot.convert(raw, tmp_path / "rec2", alphabets=["Bet"]).num_images == 3
    # A folder inside a character folder.
    raw = layout("nested", {**good, yod2 + "/more/": None})
    with pytest.raises(SourceConversionError) as e:
        omniglot.list_classes(raw)
    assert str(e.value) == (f"{_where(raw, form, yod2 + '/more')}: a folder inside a "
                            "character folder (only image files are expected)")
    # A stray file where alphabet folders are expected (e.g. from a Mac).
    raw = layout("stray", {**good, "images_background/.DS_Store": b"\0"})
    with pytest.raises(SourceConversionError) as e:
        omniglot.list_classes(raw)
    assert str(e.value) == (f"{_where(raw, form, 'images_background/.DS_Store')}: a file "
                            "where only alphabet folders are expected")
    # A missing validation alphabet.
    raw = layout("novalid", {n: d for n, d in good.items() if "/Tagalog/" not in n})
    with pytest.raises(SourceConversionError,
                       match=re.escape(f"{_where(raw, form, 'images_background')}"
                                       ": validation alphabet(s) ['Tagalog'] are not")):
        omniglot.list_classes(raw)


# ----------------------------------------------------------------- real Omniglot


def test_omniglot_spec_equals_official():
    raw = shared_path("data", "omniglot")
    official = shared_path("data", "official_records", "omniglot", "dataset_spec.json")
    text = official.read_text()
    # The official records were converted with --records_root=. (path "./omniglot").
    assert spec_writer.spec_to_json(omniglot.dataset_spec(raw, ".")) == text
    ours = spec_writer.spec_to_json(omniglot.dataset_spec(raw, "/some/where"))
    diff = [(a, b) for a, b in zip(ours.splitlines(), text.splitlines()) if a != b]
    assert diff == [('  "path": "/some/where/omniglot",', '  "path": "./omniglot",')]


def test_omniglot_order_matches_index_table():
    raw = shared_path("data", "omniglot")
    table = json.loads((raw / "omniglot_index.json").read_text())["meta_dataset_class_order"]
    classes = omniglot.list_classes(raw)
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
    report = omniglot.convert(raw, tmp_path, alphabets=alphabets)
    assert report.classes_per_split == {"TRAIN": 26, "VALID": 14, "TEST": 20}
    spec = load_dataset_spec(official)
    ids = [cid for cid in range(spec.num_classes)
           if spec.class_names[cid].rsplit("-", 1)[0] in alphabets]
    assert len(ids) == 60
    assert _record_files(tmp_path / "omniglot") == ids
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
    report = omniglot.convert(raw, ".")
    assert report.classes_per_split == {"TRAIN": 883, "VALID": 81, "TEST": 659}
    assert report.num_images == 32460
    ours = tmp_path / "omniglot"
    assert (ours / "dataset_spec.json").read_text() == (official / "dataset_spec.json").read_text()
    assert check_source(ours).ok
    if _same_jpeg_encoder():
        for cid in range(1623):
            name = f"{cid}.tfrecords"
            assert (ours / name).read_bytes() == (official / name).read_bytes(), name
    else:
        _compare_with_official(ours, official, range(0, 1623, 40))


# ----------------------------------------------------------------- real Omniglot, original layout

# Converted from the original layout: Arcadian (TRAIN) and Angelic (TEST) are rebuilt from the
# packed arrays, Tagalog (VALID) is the original PNG files of images_background_small2.zip.
REAL_ALPHABETS = ("Arcadian", "Tagalog", "Angelic")


@pytest.fixture(scope="module")
def real_original_members():
    """The full original layout of Omniglot as {member: bytes}. Only REAL_ALPHABETS hold
    images; every other character folder holds one placeholder (an empty file with the name
    of its first drawing), so the class ids and the class / superclass structure of the spec
    are the official ones: files are counted, only the converted classes are decoded. (One
    placeholder, not 20: creating 30,000 files takes tens of seconds on a busy disk.)"""
    omniglot = shared_path("data", "omniglot")
    index = {e["alphabet"]: e for e in
             json.loads((omniglot / "omniglot_index.json").read_text())["alphabets"]}

    def name(e, k, drawer):  # k = 0-based character of the alphabet
        return (f"{e['set']}/{e['alphabet']}/character{k + 1:02d}/"
                f"{e['first_char_id'] + k:04d}_{drawer:02d}.png")

    members = {name(e, k, 1): b"" for e in index.values() for k in range(e["num_characters"])}
    for alphabet in ("Arcadian", "Angelic"):
        e = index[alphabet]
        first = e["npz_first_row"]
        rows = range(first, first + e["num_characters"])
        for row, drawings in omniglot_raw.iter_npz_rows(omniglot / e["npz_file"], "images", rows):
            for d, drawing in enumerate(drawings):
                members[name(e, row - first, d + 1)] = _png(drawing)
    with zipfile.ZipFile(omniglot / "images_background_small2.zip") as z:
        for member in z.namelist():
            parts = member.split("/")
            if len(parts) == 4 and parts[1] == "Tagalog" and parts[3]:
                ours = "images_background/" + "/".join(parts[1:])
                assert ours in members or not ours.endswith("_01.png"), ours
                members[ours] = z.read(member)
    real = [n for n, data in members.items() if n.split("/")[1] in REAL_ALPHABETS]
    assert len(real) == 63 * 20 and all(members[n] for n in real)
    return members


def test_rebuilt_png_decodes_like_the_original_release():
    """Our PNGs (mode "1") decode to the mode and pixels of the release's PNGs, and give the
    same JPEG: checked on Balinese character01 of images_background_small1.zip."""
    omniglot = shared_path("data", "omniglot")
    _, drawings = next(omniglot_raw.iter_npz_rows(omniglot / "images_background.npz", "images",
                                              [107]))  # Balinese-character01 = id 0108
    with zipfile.ZipFile(omniglot / "images_background_small1.zip") as z:
        for d, drawing in enumerate(drawings):
            original = z.read(f"images_background_small1/Balinese/character01/0108_{d + 1:02d}.png")
            a, b = Image.open(io.BytesIO(original)), Image.open(io.BytesIO(_png(drawing)))
            assert (a.format, a.mode, a.size) == (b.format, b.mode, b.size) == (
                "PNG", "1", (105, 105))
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
            assert (image_encoding.encode_jpeg(original, invert=True)
                    == image_encoding.encode_jpeg(_png(drawing), invert=True))


@pytest.mark.parametrize("form", ["folders", "zip"])
def test_original_layout_matches_official_records(tmp_path, form, real_original_members):
    official = shared_path("data", "official_records", "omniglot")
    raw = _write_layout(tmp_path / "raw", real_original_members, form)
    assert omniglot_raw.detect_raw_form(raw).form == form
    spec = load_dataset_spec(official)
    ids = [cid for cid in range(spec.num_classes)
           if spec.class_names[cid].rsplit("-", 1)[0] in REAL_ALPHABETS]
    assert len(ids) == 63
    # Classes, superclasses and splits equal the official spec's; so do the image counts of
    # the real alphabets (the placeholder characters count their one file).
    ours = json.loads(spec_writer.spec_to_json(omniglot.dataset_spec(raw, ".")))
    theirs = json.loads((official / "dataset_spec.json").read_text())
    assert ours.pop("images_per_class") == {
        k: (n if int(k) in ids else 1) for k, n in theirs.pop("images_per_class").items()}
    assert ours == theirs
    report = omniglot.convert(raw, tmp_path / "rec", alphabets=list(REAL_ALPHABETS))
    assert report.classes_per_split == {"TRAIN": 26, "VALID": 17, "TEST": 20}
    assert _record_files(tmp_path / "rec" / "omniglot") == ids
    identical = _compare_with_official(tmp_path / "rec" / "omniglot", official, ids)
    print(f"{form}: byte-identical record files: {identical}/{len(ids)} "
          f"(Pillow {PIL.__version__}, libjpeg-turbo {features.version('libjpeg_turbo')})")
    if _same_jpeg_encoder():
        assert identical == len(ids)
    # Class 0's one file here is a placeholder: refused with strict, naming it.
    first = _where(raw, form, "images_background/Anglo-Saxon_Futhorc/character01/0296_01.png")
    with pytest.raises(SourceConversionError,
                       match=re.escape(first) + ": unreadable image"):
        omniglot.convert(raw, tmp_path / "full", classes=[0], strict=True)
    assert not (tmp_path / "full").exists()
