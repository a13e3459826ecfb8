"""Traffic Sign (GTSRB training set): 43 classes, all of them TEST classes.

Official rules (TrafficSignConverter): class `i` is named "<ii>.<label name>" with the label
names of the benchmark's TrafficSign_labels.txt; its images are the files of
`Final_Training/Images/<iiiii>/` sorted by name, without the `GT-<iiiii>.csv` annotation file
and subfolders, then shuffled by a fresh `RandomState(seed + 1)` per class, because the
release orders them as 30-frame tracks of the same physical sign.

The download GTSRB_Final_Training_Images.zip is read in place (members under
`GTSRB/Final_Training/Images/`), with the same records as its extracted folder.
"""

import os

import numpy as np

from ctx_tf.data import facts
from ctx_tf.data.sources import common
from ctx_tf.data.writing import archives

NAME = "traffic_sign"
ZIP_NAME = "GTSRB_Final_Training_Images.zip"
RAW_EXPECTS = ("--raw_dir: the GTSRB folder (reads the image files of "
               f"Final_Training/Images/<00000..00042>/), or the download {ZIP_NAME} (or a "
               "folder holding it), read in place")
NUM_CLASSES = 43
SHUFFLE_SEED = common.OFFICIAL_SEED + 1
_IMAGES = "Final_Training/Images"
_ZIP_IMAGES = f"GTSRB/{_IMAGES}/"  # the zip unpacks into GTSRB/


def split_classes(label_names):
    """The official split: every class is TEST, named "<ii>.<label name>"."""
    if len(label_names) != NUM_CLASSES:
        raise ValueError(f"traffic_sign needs {NUM_CLASSES} label names, got {len(label_names)}")
    return {"train": [], "valid": [],
            "test": [f"{i:02d}.{n}" for i, n in enumerate(label_names)]}


def _shuffled(paths):
    np.random.RandomState(SHUFFLE_SEED).shuffle(paths)
    return paths


def class_images(raw_dir, class_id):
    """The image paths of class `class_id` in the official write order, and the skipped files."""
    folder = os.path.join(raw_dir, *_IMAGES.split("/"), f"{class_id:05d}")
    paths, skipped = common.list_class_folder(folder, {f"GT-{class_id:05d}.csv"})
    return _shuffled(paths), skipped


def _zip_folders(zip_path):
    """{class folder name: {entry name: is_folder}} of the images inside the zip."""
    folders = {}
    for member in archives.zip_names(zip_path):
        if not member.startswith(_ZIP_IMAGES):
            continue
        parts = member[len(_ZIP_IMAGES):].split("/")
        entries = folders.setdefault(parts[0], {})
        if len(parts) > 1 and parts[1]:
            entries[parts[1]] = len(parts) > 2
    if not folders:
        raise common.SourceConversionError(
            f"{zip_path}: holds no {_ZIP_IMAGES} member; expected the GTSRB training images "
            f"download {ZIP_NAME}")
    return folders


def _zip_class_images(zip_path, folders, class_id):
    """As `class_images`, for the zip: (member names, skipped named by zip:member)."""
    folder = f"{_ZIP_IMAGES}{class_id:05d}/"
    if f"{class_id:05d}" not in folders:
        raise common.MissingRawFileError(
            f"{zip_path}:{folder} is missing: it should hold the images of one class")
    names, skipped = common.select_class_files(
        folders[f"{class_id:05d}"], {f"GT-{class_id:05d}.csv"},
        lambda name: f"{zip_path}:{folder}{name}")
    return _shuffled([folder + name for name in names]), skipped


def _zip_path(raw_dir):
    """The zip to read in place: `raw_dir` itself, or the download in a folder without the
    extracted tree; None to read the folders."""
    if os.path.isfile(raw_dir):
        return raw_dir
    inside = os.path.join(raw_dir, ZIP_NAME)
    if not os.path.isdir(os.path.join(raw_dir, "Final_Training")) and os.path.isfile(inside):
        return inside
    return None


def describe_raw(raw_dir):
    """One line naming the raw form read."""
    zip_path = _zip_path(raw_dir)
    return (f"GTSRB training images in {raw_dir}" if zip_path is None
            else f"GTSRB training images from {zip_path} (read in place)")


def plan(raw_dir, name=NAME):
    """The official Traffic Sign classes and shuffled image files of `raw_dir` (the GTSRB
    folder or the download zip)."""
    splits = split_classes(facts.labels(NAME))
    zip_path = _zip_path(os.fspath(raw_dir))
    folders = None if zip_path is None else _zip_folders(zip_path)
    classes, skipped = [], []
    for class_id, class_name in enumerate(common.classes_in_id_order(splits)):
        if zip_path is None:
            paths, left_out = class_images(raw_dir, class_id)
        else:
            paths, left_out = _zip_class_images(zip_path, folders, class_id)
        classes.append(common.files_class(class_name, paths, archive=zip_path))
        skipped.extend(left_out)
    return common.flat_plan(name, splits, classes, skipped)
