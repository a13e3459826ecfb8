"""Every source through the engine: a tiny raw tree in the download's layout is converted, the
records are read back and compared with the official encoding rule applied to the expected file,
crop or row, and the output passes the consistency check. (Omniglot's run through the engine is
in test_omniglot.py.)"""

import io
import json
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from PIL import Image

from ctx_tf.data import facts
from ctx_tf.data import sources
from ctx_tf.data.checking import consistency
from ctx_tf.data.reading import record_format
from ctx_tf.data.sources import (aircraft, cu_birds, dtd, fungi, ilsvrc, mini_imagenet, mscoco,
                                 quickdraw, traffic_sign, vgg_flower)
from ctx_tf.data.sources.__main__ import define_flags, run_cli
from ctx_tf.data.writing import engine, image_encoding
from ctx_tf.data.writing.spec_writer import spanning_counts
from tests.data.sources.raw_trees import aircraft as aircraft_tree
from tests.data.sources.raw_trees import cu_birds as cu_birds_tree
from tests.data.sources.raw_trees import dtd as dtd_tree
from tests.data.sources.raw_trees import fungi as fungi_tree
from tests.data.sources.raw_trees import ilsvrc as ilsvrc_tree
from tests.data.sources.raw_trees import mini_imagenet as mini_imagenet_tree
from tests.data.sources.raw_trees import mscoco as mscoco_tree
from tests.data.sources.raw_trees import official_class_names
from tests.data.sources.raw_trees import quickdraw as quickdraw_tree
from tests.data.sources.raw_trees import traffic_sign as traffic_sign_tree
from tests.data.sources.raw_trees import vgg_flower as vgg_flower_tree

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".ppm")


def distinct_images(root):
    """Rewrites every image file under `root` as a different small image in its own format, so
    that record order and content are checked by the bytes. Returns the files in path order."""
    paths = sorted(p for p in pathlib.Path(root).rglob("*")
                   if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)
    for k, path in enumerate(paths):
        buf = io.BytesIO()
        image = Image.new("RGB", (9 + k % 4, 7 + k % 3), (k % 256, (k // 256) * 40 % 256, 90))
        image.save(buf, format="PPM" if path.suffix.lower() == ".ppm" else "JPEG")
        path.write_bytes(buf.getvalue())
    return paths


def convert(plan, tmp_path, **kwargs):
    """Converts `plan` with one worker; returns (report, {class id: [(image, label)]}, spec)."""
    report = engine.convert(plan, tmp_path / "records", workers=1, log=lambda line: None,
                            **kwargs)
    out = tmp_path / "records" / plan.name
    assert consistency.check_source(out).ok
    written = {}
    for class_id in range(len(plan.classes)):
        examples = [tf.train.Example.FromString(r)
                    for r in record_format.read_tfrecord(out / f"{class_id}.tfrecords")]
        written[class_id] = [(e.features.feature["image"].bytes_list.value[0],
                              e.features.feature["label"].int64_list.value[0]) for e in examples]
        assert all(label == class_id for _, label in written[class_id])
    with open(out / "dataset_spec.json") as f:
        spec = json.load(f)
    if plan.spec_type == "flat":
        assert [spec["class_names"][str(i)] for i in range(len(plan.classes))] == [
            c.name for c in plan.classes]
        assert spec["images_per_class"] == {str(i): len(v) for i, v in written.items()}
        assert spec["classes_per_split"] == dict(plan.classes_per_split)
    return report, written, spec


def images(written, class_id):
    return [image for image, _ in written[class_id]]


def kept(paths):
    """The official rule for RGB JPEG files neither cropped nor inverted: bytes kept."""
    return [pathlib.Path(p).read_bytes() for p in paths]


def test_cu_birds_records(tmp_path):
    file_order = sorted(official_class_names("cu_birds"))
    raw = cu_birds_tree.write(tmp_path / "CUB_200_2011", file_order)
    distinct_images(raw)
    _, written, _ = convert(cu_birds.plan(str(raw)), tmp_path)
    for class_id, name in enumerate(official_class_names("cu_birds")):
        folder = raw / "images" / name
        assert images(written, class_id) == kept(sorted(folder.iterdir()))


def test_dtd_with_a_stray_file_skipped_and_counted(tmp_path):
    names = sorted(official_class_names("dtd"))
    raw = dtd_tree.write(tmp_path / "dtd", names)
    distinct_images(raw)
    (raw / "images" / "waffled" / ".directory").write_text("[Dolphin]\n")
    report, written, _ = convert(dtd.plan(str(raw)), tmp_path)
    for class_id, name in enumerate(official_class_names("dtd")):
        folder = raw / "images" / name
        assert images(written, class_id) == kept(
            sorted(p for p in folder.iterdir() if p.suffix == ".jpg"))
    assert [w for w, _ in report.skipped] == [str(raw / "images" / "waffled" / ".directory")]
    assert "left out 1 file(s)" in report.summary()
    # Against the official spec shipped with ctx_tf: same classes and splits, fewer images.
    checked = consistency.check_source(tmp_path / "records" / "dtd", raise_on_error=False,
                                 reference_spec="official")
    assert not checked.problems and checked.reference_differences
    assert all("images" in d and "official dtd spec" in d
               for d in checked.reference_differences), checked.reference_differences


def test_vgg_flower_records(tmp_path):
    labels = vgg_flower_tree.labels()
    raw = vgg_flower_tree.write(tmp_path / "flowers", labels)
    distinct_images(raw)
    _, written, _ = convert(vgg_flower.plan(str(raw)), tmp_path)
    for class_id, name in enumerate(official_class_names("vgg_flower")):
        label = int(name[:3])
        assert images(written, class_id) == kept(
            raw / "jpg" / f"image_{n + 1:05d}.jpg" for n, l in enumerate(labels) if l == label)


def test_aircraft_crops(tmp_path):
    names = official_class_names("aircraft")
    boxes = aircraft_tree.images(names)
    raw = aircraft_tree.write(tmp_path / "fgvc-aircraft-2013b", names, boxes)
    distinct_images(raw)
    _, written, _ = convert(aircraft.plan(str(raw)), tmp_path)
    for class_id, name in enumerate(names):
        want = sorted((i, box) for i, n, _, box in boxes if n == name)
        assert images(written, class_id) == [
            image_encoding.encode_image_file(str(raw / "data" / "images" / f"{i}.jpg"), crop=box)
            for i, box in want]
        assert all(Image.open(io.BytesIO(im)).size == (4, 3) for im in images(written, class_id))


def test_traffic_sign_shuffled_order_and_ppm_reencoded(tmp_path):
    sizes = [7 if i % 2 else i % 5 + 1 for i in range(43)]
    raw = traffic_sign_tree.write(tmp_path / "GTSRB", sizes)
    distinct_images(raw)
    report, written, _ = convert(traffic_sign.plan(str(raw)), tmp_path)
    assert len(report.skipped) == 43  # the GT-*.csv files
    for class_id, size in enumerate(sizes):
        folder = raw / "Final_Training" / "Images" / f"{class_id:05d}"
        names = traffic_sign_tree.names(size)
        order = traffic_sign_tree.PERMUTATION_OF_7 if size == 7 else None
        got = images(written, class_id)
        encoded = [image_encoding.encode_image_file(str(folder / n)) for n in names]
        assert all(im[:2] == b"\xff\xd8" for im in got)  # PPM -> JPEG
        if order is not None:
            assert got == [encoded[i] for i in order]
        else:
            assert sorted(got) == sorted(encoded)


def test_quickdraw_rows(tmp_path):
    names = sorted(official_class_names("quickdraw"))
    raw = quickdraw_tree.write(tmp_path / "quickdraw", names)
    _, written, _ = convert(quickdraw.plan(str(raw)), tmp_path)
    for class_id, name in enumerate(official_class_names("quickdraw")):
        rows = np.load(raw / f"{name}.npy")
        assert images(written, class_id) == [image_encoding.encode_bitmap_row(r) for r in rows]
        buf = io.BytesIO()  # the official rule, spelled out for one row
        Image.fromarray(rows[0].reshape(28, 28)).convert("RGB").save(buf, format="JPEG")
        assert images(written, class_id)[0] == buf.getvalue()


@pytest.mark.slow  # 1394 classes of 3 files: about 11 s here
def test_fungi_records(tmp_path):
    raw = fungi_tree.write(tmp_path, fungi_tree.real_categories(), with_files=1394)
    distinct_images(raw / "images")
    plan = fungi.plan(str(raw))
    _, written, _ = convert(plan, tmp_path)
    for class_id in (0, 700, 1393):
        category, name = int(plan.classes[class_id].name[:4]), plan.classes[class_id].name[5:]
        assert images(written, class_id) == kept(
            raw / f"images/{name}/{p}_{category}_{j}.JPG"
            for p, j in (("train", 0), ("train", 1), ("val", 0)))


def test_mini_imagenet_rows(tmp_path, rng_seed):
    caches = mini_imagenet_tree.write_caches(tmp_path, np.random.default_rng(rng_seed))
    _, written, _ = convert(mini_imagenet.plan(str(tmp_path)), tmp_path)
    class_id = 0
    for part in ("train", "val", "test"):
        names, class_dict, image_data = caches[part]
        for name in names:
            expected = []
            for row in class_dict[name]:
                buf = io.BytesIO()
                Image.fromarray(image_data[row]).save(buf, format="JPEG")
                expected.append(buf.getvalue())
            assert images(written, class_id) == expected
            class_id += 1


def _mscoco_tree(root):
    """The rule test's images and boxes, plus one box on image 1 for every category (every
    class needs a record); image 3 has no file."""
    annotations = mscoco_tree.ANNOTATIONS + [(1, c["name"], [4, 4, 6, 6])
                                             for c in mscoco_tree.CATEGORIES]
    (root / "train2017").mkdir(parents=True)
    for image_id, size in ((1, (20, 16)), (2, (10, 10))):
        buf = io.BytesIO()
        Image.new("RGB", size, (image_id * 90, 30, 60)).save(buf, format="JPEG")
        (root / "train2017" / f"{image_id:012d}.jpg").write_bytes(buf.getvalue())
    (root / "instances_train2017.json").write_text(json.dumps({
        "annotations": [{"id": k, "image_id": i, "category_id": mscoco_tree.IDS[c], "bbox": b}
                        for k, (i, c, b) in enumerate(annotations)],
        "categories": mscoco_tree.CATEGORIES}))
    return root


def test_mscoco_scaled_boxes_left_out_and_unreadable_boxes_counted(tmp_path):
    raw = _mscoco_tree(tmp_path / "coco")
    plan = mscoco.plan(str(raw))
    report, written, _ = convert(plan, tmp_path)
    names = [c.name for c in plan.classes]
    image = {i: str(raw / "train2017" / f"{i:012d}.jpg") for i in (1, 2, 3)}
    common = image_encoding.encode_image_file(image[1], crop=(3, 3, 11, 11))
    # person: two boxes (the empty one is left out), then the box every category has.
    assert images(written, names.index("person")) == [
        image_encoding.encode_image_file(image[1], crop=(1, 2, 13, 9)),
        image_encoding.encode_image_file(image[2], crop=(0, 2, 6, 6)), common]
    # dog: the box clipped to the image; image 3 cannot be read.
    assert images(written, names.index("dog")) == [
        image_encoding.encode_image_file(image[1], crop=(14, 9, 20, 16)), common]
    assert images(written, names.index("cat")) == [common]
    assert report.skipped == ((f"{image[2]} box [30, 2, 4, 4]", report.skipped[0][1]),)
    assert [w for w, _ in report.unreadable] == [f"{image[3]} box [1, 1, 4, 4]"]
    assert "FileNotFoundError" in report.unreadable[0][1]
    assert "left out 1 file(s) or record(s)" in report.summary()
    assert "1 x box empty once clipped" in report.summary()
    with pytest.raises(engine.UnreadableImageError, match=r"000000000003\.jpg box"):
        engine.convert(plan, tmp_path / "strict", workers=1, strict=True, log=lambda l: None)
    assert not (tmp_path / "strict").exists()


@pytest.mark.parametrize("name", ilsvrc.NAMES)
def test_ilsvrc_subset_hierarchical_spec_counts_what_was_written(tmp_path, name):
    (tmp_path / "train").mkdir()
    raw = ilsvrc_tree.write_subset(tmp_path / "train")
    distinct_images(raw)
    bad = raw / "n02666196" / "n02666196_8.JPEG"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated: skipped and reported
    plan = ilsvrc.plan(str(raw), name, allow_missing_classes=True)
    report, written, spec = convert(plan, tmp_path)
    leaf_images = {}
    for class_id, cls in enumerate(plan.classes):
        paths = [os.path.join(raw, cls.name, f)
                 for f in sorted(ilsvrc_tree.SUBSET[cls.name])
                 if f"{cls.name}/{f}" not in facts.ilsvrc_duplicates() and f != bad.name]
        assert images(written, class_id) == kept(paths)
        leaf_images[cls.name] = len(paths)
    assert [w for w, _ in report.unreadable] == [str(bad)]
    assert spec["__class__"] == "HierarchicalDatasetSpecification"
    assert spec["class_names"] == {str(i): c.name for i, c in enumerate(plan.classes)}
    subgraphs = plan.spec_fields["split_subgraphs"]
    for split in ("TRAIN", "VALID", "TEST"):
        assert spec["split_subgraphs"][split] == subgraphs[split]
        assert spec["images_per_class"][split] == spanning_counts(subgraphs[split], leaf_images)
    # The listing counted the truncated file; the spec counts what was written.
    listed = plan.spec_fields["images_per_class"]
    split = next(s for s in listed if "n02666196" in listed[s])
    assert listed[split]["n02666196"] == spec["images_per_class"][split]["n02666196"] + 1


def test_one_or_two_workers_write_identical_files(tmp_path):
    # Spawned workers import no TensorFlow, so this takes about 2 s.
    raw = traffic_sign_tree.write(tmp_path / "GTSRB", [i % 4 + 1 for i in range(43)])
    distinct_images(raw)
    plan = traffic_sign.plan(str(raw))
    for workers in (1, 2):
        engine.convert(plan, tmp_path / f"w{workers}", workers=workers, log=lambda l: None,
                       spec_path="./traffic_sign")
    one, two = tmp_path / "w1" / "traffic_sign", tmp_path / "w2" / "traffic_sign"
    assert sorted(os.listdir(one)) == sorted(os.listdir(two))
    for f in os.listdir(one):
        if f != engine.MANIFEST_FILENAME:
            assert (one / f).read_bytes() == (two / f).read_bytes(), f


def test_cli_all_two_sources(tmp_path, capsys, monkeypatch):
    names = sorted(official_class_names("dtd"))
    dtd_raw = dtd_tree.write(tmp_path / "dtd", names)
    qd_raw = quickdraw_tree.write(tmp_path / "quickdraw",
                                      sorted(official_class_names("quickdraw")))
    # `all` with the registry narrowed to two sources: every other needs its own download.
    monkeypatch.setattr(sources, "SOURCES", ("dtd", "quickdraw"))
    fv = define_flags(flags.FlagValues())
    fv(["prog", "--source=all", f"--raw_dir=dtd={dtd_raw}", f"--raw_dir=quickdraw={qd_raw}",
        f"--records_root_dir={tmp_path / 'out'}", "--workers=1"])
    assert run_cli(fv) == 0
    out = capsys.readouterr().out
    assert "wrote source 'dtd'" in out and "wrote source 'quickdraw'" in out
    for name in ("dtd", "quickdraw"):
        assert consistency.check_source(tmp_path / "out" / name).ok
