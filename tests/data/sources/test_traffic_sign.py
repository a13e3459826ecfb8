"""traffic_sign: 43 TEST classes, official names, GT csv skipped, the seeded per-class shuffle."""

import io
import pickle
import zipfile

import pytest
from PIL import Image

from ctx_tf.data.sources import traffic_sign
from ctx_tf.data.writing import engine
from ctx_tf.data.writing.errors import SourceConversionError
from tests.data.sources.raw_trees import official, official_class_names
from tests.data.sources.raw_trees import traffic_sign as traffic_sign_tree


def test_plan_reproduces_the_official_spec_and_shuffle(tmp_path):
    spec = official("traffic_sign_dataset_spec.json")
    sizes = [7 if i % 2 else i % 5 + 1 for i in range(43)]
    raw = traffic_sign_tree.write(tmp_path / "GTSRB", sizes)
    subfolder = raw / "Final_Training" / "Images" / "00004" / "extra"
    subfolder.mkdir()
    plan = pickle.loads(pickle.dumps(traffic_sign.plan(str(raw))))
    assert [c.name for c in plan.classes] == official_class_names("traffic_sign")
    assert dict(plan.classes_per_split) == spec["classes_per_split"]
    csvs = [str(raw / "Final_Training" / "Images" / f"{i:05d}" / f"GT-{i:05d}.csv")
            for i in range(43)]
    assert sorted(p for p, _ in plan.skipped) == sorted(csvs + [str(subfolder)])
    for class_id, cls in enumerate(plan.classes):
        folder = raw / "Final_Training" / "Images" / f"{class_id:05d}"
        refs = list(cls.images())
        assert cls.num_images == len(refs) == sizes[class_id]
        assert sorted(r.path for r in refs) == [str(folder / n) for n in traffic_sign_tree.names(sizes[class_id])]
        if sizes[class_id] == 7:  # a fresh generator per class: the same permutation each time
            assert [r.path for r in refs] == [
                str(folder / traffic_sign_tree.names(7)[i]) for i in traffic_sign_tree.PERMUTATION_OF_7]


def test_missing_class_folder_names_the_path(tmp_path):
    raw = traffic_sign_tree.write(tmp_path, [2] * 42)
    with pytest.raises(FileNotFoundError, match="00042"):
        traffic_sign.plan(str(raw))


def _zip_of(raw, path):
    """The download GTSRB_Final_Training_Images.zip of the GTSRB folder `raw`."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("GTSRB/", b"")
        z.writestr("GTSRB/Readme-Images.txt", "readme\n")
        for file in sorted(raw.rglob("*")):
            z.write(file, f"GTSRB/{file.relative_to(raw)}")
    return path


def test_the_downloaded_zip_read_in_place_gives_the_folders_records(tmp_path):
    sizes = [7 if i % 2 else i % 5 + 1 for i in range(43)]
    raw = traffic_sign_tree.write(tmp_path / "GTSRB", sizes)
    for k, path in enumerate(sorted(raw.rglob("*.ppm"))):  # every image its own bytes
        buf = io.BytesIO()
        Image.new("RGB", (5, 4), (k % 256, k // 256, 9)).save(buf, format="PPM")
        path.write_bytes(buf.getvalue())
    (raw / "Final_Training" / "Images" / "00004" / "extra").mkdir()
    (tmp_path / "download").mkdir()
    zip_path = _zip_of(raw, tmp_path / "download" / traffic_sign.ZIP_NAME)
    folders = traffic_sign.plan(str(raw))
    for raw_dir in (zip_path, zip_path.parent):  # the zip, or the folder it was saved in
        zipped = traffic_sign.plan(str(raw_dir))
        assert [(c.name, c.num_images) for c in zipped.classes] == [
            (c.name, c.num_images) for c in folders.classes]
        assert [w for w, _ in zipped.skipped] == [
            w.replace(str(raw), f"{zip_path}:GTSRB") for w, _ in folders.skipped]
        for a, b in zip(zipped.classes, folders.classes):
            assert [r.read() for r in a.images()] == [r.read() for r in b.images()]
    assert traffic_sign.describe_raw(str(zip_path.parent)) == (
        f"GTSRB training images from {zip_path} (read in place)")
    pickle.loads(pickle.dumps(zipped))
    for plan, root in ((folders, "a"), (zipped, "b")):
        engine.convert(plan, tmp_path / root, workers=1, spec_path="x", log=lambda _: None)
    first, second = (tmp_path / root / "traffic_sign" for root in ("a", "b"))
    names = sorted(p.name for p in first.iterdir() if p.suffix == ".tfrecords")
    assert len(names) == 43
    for name in names + ["dataset_spec.json"]:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_a_zip_without_the_training_images_is_named(tmp_path):
    other = tmp_path / "GTSRB_Final_Test_Images.zip"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("GTSRB/Final_Test/Images/00000.ppm", traffic_sign_tree.ppm())
    with pytest.raises(SourceConversionError,
                       match=f"^{other}: holds no GTSRB/Final_Training/Images/ member"):
        traffic_sign.plan(str(other))
    raw = traffic_sign_tree.write(tmp_path / "GTSRB", [2] * 42)
    partial = _zip_of(raw, tmp_path / "partial.zip")
    with pytest.raises(FileNotFoundError,
                       match=f"^{partial}:GTSRB/Final_Training/Images/00042/ is missing"):
        traffic_sign.plan(str(partial))
