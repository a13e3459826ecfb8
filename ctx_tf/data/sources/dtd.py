"""Describable Textures (DTD): 47 textures, split 33 / 7 / 7 by the official seeded draw.

Official rules (DTDConverter): the classes are the folders of `images/` sorted by name; a
class's images are its files sorted by name (subfolders left out), except the stray
`.directory` file the release leaves in `images/waffled/`.
"""

import os

from ctx_tf.data.sources import common

NAME = "dtd"
RAW_EXPECTS = "--raw_dir: the dtd folder; reads the files of images/<texture>/"
NUM_TRAIN, NUM_VALID, NUM_TEST = 33, 7, 7
# The one non-image file of the release the official converter knows about.
_FILES_TO_SKIP = {"waffled": {".directory"}}


def textures(raw_dir):
    """The texture folders of images/, sorted; returns `(names, skipped)`."""
    images = common.require(os.path.join(raw_dir, "images"), "one folder per texture")
    names, skipped = [], []
    for entry in sorted(os.listdir(images)):
        if os.path.isdir(os.path.join(images, entry)):
            names.append(entry)
        else:
            # The official converter would take it for a texture; the release has none.
            skipped.append((os.path.join(images, entry), "a file where texture folders are"))
    return names, skipped


def split_textures(names):
    """The official split of the texture names (sorted)."""
    return common.seeded_class_split(sorted(names), NUM_TRAIN, NUM_VALID, NUM_TEST)


def plan(raw_dir, name=NAME):
    """The official DTD classes, splits and image files of `raw_dir`."""
    names, skipped = textures(raw_dir)
    splits = split_textures(names)
    classes = []
    for texture in common.classes_in_id_order(splits):
        paths, left_out = common.list_class_folder(
            os.path.join(raw_dir, "images", texture), _FILES_TO_SKIP.get(texture, ()))
        classes.append(common.files_class(texture, paths))
        skipped.extend(left_out)
    return common.flat_plan(name, splits, classes, skipped)
