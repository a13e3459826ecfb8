"""ilsvrc: ILSVRC2012_img_train.tar read in place gives the records of its extracted folders."""

import io
import os
import pickle
import tarfile
import zipfile

import pytest

from ctx_tf.data.sources import ilsvrc
from ctx_tf.data.writing import engine
from ctx_tf.data.writing.errors import SourceConversionError
from tests.data.sources.raw_trees import ilsvrc as ilsvrc_tree


def _inner_tar(folder, extra=()):
    """The bytes of a tar of the files of `folder` (in reverse name order: the listing must
    sort them), plus `extra` (name, bytes) members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in sorted(os.listdir(folder), reverse=True):
            tar.add(os.path.join(folder, name), arcname=name)
        for name, data in extra:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _train_tar(tree, path, inner=None):
    """`path`: an outer tar holding `<synset>.tar` of each synset folder of `tree` (or the
    given {synset: inner tar bytes})."""
    inner = inner or {s: _inner_tar(tree / s) for s in sorted(os.listdir(tree))}
    with tarfile.open(path, "w") as tar:
        for synset, data in inner.items():
            _add(tar, f"{synset}.tar", data)
    return path


@pytest.fixture(name="forms")
def _forms(tmp_path):
    """(the extracted folder, the train tar) of the same images, with a non-JPEG file."""
    (tmp_path / "folders").mkdir()
    tree = ilsvrc_tree.write_subset(tmp_path / "folders")
    (tree / "n01443537" / "notes.txt").write_text("not an image\n")
    return tree, _train_tar(tree, tmp_path / ilsvrc.TRAIN_TAR)


def _outputs(root):
    return {name: (root / name).read_bytes() for name in sorted(os.listdir(root))
            if name.endswith(".tfrecords") or name == "dataset_spec.json"}


@pytest.mark.parametrize("name", ilsvrc.NAMES)
def test_the_tar_plans_what_the_folders_plan(forms, name):
    tree, tar = forms
    folders = ilsvrc.plan(str(tree), name, allow_missing_classes=True)
    archive = ilsvrc.plan(str(tar), name, allow_missing_classes=True)
    assert [(c.name, c.num_images) for c in archive.classes] == [
        (c.name, c.num_images) for c in folders.classes]
    assert archive.classes_per_split == folders.classes_per_split
    assert archive.spec_fields == folders.spec_fields
    assert [w.replace(f"{tar}:", "").replace(".tar/", "/") for w, _ in archive.skipped] == [
        os.path.relpath(w, tree) for w, _ in folders.skipped]
    assert [r for r, _ in folders.skipped] != []  # the duplicate and notes.txt
    for a, f in zip(archive.classes, folders.classes):
        items = list(a.images())
        assert [i.where for i in items] == [
            f"{tar}:{a.name}.tar/{os.path.basename(r.path)}" for r in f.images()]
        assert [i.read() for i in items] == [r.read() for r in f.images()]
    pickle.loads(pickle.dumps(archive))


def test_records_from_the_tar_equal_those_from_the_folders(forms, tmp_path):
    tree, tar = forms
    engine.convert(ilsvrc.plan(str(tree), allow_missing_classes=True), tmp_path / "a",
                   workers=1, spec_path="x", log=lambda _: None)
    report = engine.convert(ilsvrc.plan(str(tar), allow_missing_classes=True), tmp_path / "b",
                            workers=2, spec_path="x", log=lambda _: None)
    expected = _outputs(tmp_path / "a" / "ilsvrc_2012")
    assert len(expected) == 5
    assert _outputs(tmp_path / "b" / "ilsvrc_2012") == expected
    assert report.classes_written == 4 and not report.unreadable
    # Resume as for folders: a rerun keeps every class.
    again = engine.convert(ilsvrc.plan(str(tar), allow_missing_classes=True), tmp_path / "b",
                           workers=2, spec_path="x", log=lambda _: None)
    assert (again.classes_written, again.classes_resumed) == (0, 4)


def test_an_unreadable_image_in_the_tar_is_named_with_its_synset(forms, tmp_path):
    tree, _ = forms
    (tree / "n01440764" / "n01440764_9.JPEG").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    tar = _train_tar(tree, tmp_path / "damaged.tar")
    report = engine.convert(ilsvrc.plan(str(tar), allow_missing_classes=True), tmp_path / "c",
                            workers=1, log=lambda _: None)
    assert [w for w, _ in report.unreadable] == [f"{tar}:n01440764.tar/n01440764_9.JPEG"]


def test_a_damaged_or_cut_synset_tar_is_named(forms, tmp_path):
    tree, tar = forms
    inner = {s: _inner_tar(tree / s) for s in sorted(os.listdir(tree))}
    broken = bytearray(inner["n02133161"])
    second = tarfile.open(fileobj=io.BytesIO(inner["n02133161"])).getmembers()[1]
    broken[second.offset + 100] ^= 0xFF  # inside the second member's header: a bad checksum
    assert tarfile.open(fileobj=io.BytesIO(bytes(broken))).getnames()  # tarfile stops quietly
    path = _train_tar(tree, tmp_path / "bad_header.tar", dict(inner, n02133161=bytes(broken)))
    with pytest.raises(SourceConversionError,
                       match=rf"^{path}:n02133161\.tar: damaged tar header at byte"):
        ilsvrc.plan(str(path), allow_missing_classes=True)
    path = _train_tar(tree, tmp_path / "not_a_tar.tar", dict(inner, n01443537=b"\x00" * 10))
    with pytest.raises(SourceConversionError, match=rf"^{path}:n01443537\.tar: "):
        ilsvrc.plan(str(path), allow_missing_classes=True)
    last = tarfile.open(tar).getmembers()[-1]
    cut = tmp_path / "cut.tar"  # an interrupted download
    cut.write_bytes(tar.read_bytes()[:last.offset_data + 1000])
    with pytest.raises(SourceConversionError,
                       match=rf"^{cut}:n02666196\.tar: cut short by the end of the file"):
        ilsvrc.plan(str(cut), allow_missing_classes=True)


def test_an_archive_that_is_not_the_train_tar_is_one_line(forms, tmp_path):
    tree, _ = forms
    val = tmp_path / "ILSVRC2012_img_val.tar"
    with tarfile.open(val, "w") as tar:  # the validation download: JPEGs, not synset tars
        _add(tar, "ILSVRC2012_val_00000001.JPEG", b"\xff\xd8")
    gz = tmp_path / "train.tar.gz"
    with tarfile.open(gz, "w:gz") as tar:
        _add(tar, "n01440764.tar", _inner_tar(tree / "n01440764"))
    zipped = tmp_path / "train.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("n01440764.tar", b"")
    unknown = _train_tar(tree, tmp_path / "unknown.tar",
                         {"n99999999": _inner_tar(tree / "n01440764")})
    for path, message in (
            (val, "member ILSVRC2012_val_00000001.JPEG is not a <synset>.tar; expected "
                  "ILSVRC2012_img_train.tar"),
            (gz, "not an uncompressed tar archive (gzip-compressed); expected "
                 "ILSVRC2012_img_train.tar"),
            (zipped, "not an uncompressed tar archive (a zip file)"),
            (unknown, "1 member(s) are not ILSVRC-2012 synsets of the official spec: "
                      "n99999999.tar")):
        with pytest.raises(SourceConversionError) as raised:
            ilsvrc.plan(str(path), allow_missing_classes=True)
        assert str(raised.value).startswith(f"{path}: ") and message in str(raised.value)
        assert "\n" not in str(raised.value)
    with pytest.raises(FileNotFoundError, match=r"lacks 996 of the 1000 ILSVRC-2012 synset "
                                                r"tars of ilsvrc_2012"):
        ilsvrc.plan(str(forms[1]))


def test_a_folder_holding_only_the_train_tar_reads_the_tar(forms, tmp_path):
    tree, tar = forms
    (tmp_path / "holder").mkdir()
    os.rename(tar, tmp_path / "holder" / ilsvrc.TRAIN_TAR)
    tar = tmp_path / "holder" / ilsvrc.TRAIN_TAR
    plan = ilsvrc.plan(str(tmp_path / "holder"), allow_missing_classes=True)
    assert next(plan.classes[0].images()).where.startswith(f"{tar}:n01440764.tar/")
    assert ilsvrc.describe_raw(str(tmp_path / "holder")).startswith(
        f"ILSVRC-2012 train tar {tar} (read in place")
    assert ilsvrc.describe_raw(str(tree)) == f"ILSVRC-2012 train folders in {tree}"


def test_members_written_with_a_leading_dot_slash_are_read(forms, tmp_path):
    tree, _ = forms
    path = tmp_path / "dotted.tar"
    with tarfile.open(path, "w") as tar:
        tar.add(tree, arcname=".", recursive=False)
        for synset in sorted(os.listdir(tree)):
            _add(tar, f"./{synset}.tar", _inner_tar(tree / synset))
    dotted = ilsvrc.plan(str(path), allow_missing_classes=True)
    plain = ilsvrc.plan(str(forms[1]), allow_missing_classes=True)
    assert [c.num_images for c in dotted.classes] == [c.num_images for c in plain.classes]
    assert [[i.read() for i in c.images()] for c in dotted.classes] == [
        [i.read() for i in c.images()] for c in plain.classes]
