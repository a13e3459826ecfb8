"""Each converter splits the real class names of its source into the official split file.

One case per source: the names the raw download lists (in an order the converter must not
depend on), the converter's split function, and the official `<source>_splits.json`.
"""

import pytest

from ctx_tf.data import facts
from ctx_tf.data.sources import (aircraft, cu_birds, dtd, fungi, mscoco, quickdraw,
                                 traffic_sign, vgg_flower)
from tests.data.sources.raw_trees import fungi as fungi_tree
from tests.data.sources.raw_trees import mscoco as mscoco_tree
from tests.data.sources.raw_trees import official


def _split_file_names(source):
    """The class names of the official split file, train then valid then test."""
    expected = official(f"{source}_splits.json")
    return expected["train"] + expected["valid"] + expected["test"]


def _fungi_labels():
    categories = fungi_tree.real_categories()
    return fungi.labels({"categories": categories}, {"categories": categories})


# source -> (its split function, the real class names as the raw download gives them)
SPLITS = {
    "aircraft": (aircraft.split_variants,
                 lambda: sorted(_split_file_names("aircraft"), reverse=True)),
    "cu_birds": (cu_birds.split_classes, lambda: sorted(_split_file_names("cu_birds"))),
    "dtd": (dtd.split_textures, lambda: _split_file_names("dtd")),
    "quickdraw": (quickdraw.split_classes, lambda: _split_file_names("quickdraw")),
    "traffic_sign": (traffic_sign.split_classes, lambda: facts.labels("traffic_sign")),
    "vgg_flower": (vgg_flower.split_classes, lambda: facts.labels("vgg_flower")),
    "fungi": (fungi.split_labels, _fungi_labels),
    "mscoco": (mscoco.split_categories, lambda: [c["name"] for c in mscoco_tree.CATEGORIES]),
}


@pytest.mark.parametrize("source", sorted(SPLITS))
def test_split_of_the_real_names_is_the_official_split(source):
    split_fn, real_names = SPLITS[source]
    names = list(real_names())
    expected = official(f"{source}_splits.json")
    # Every real class once (fungi: 1394 categories; mscoco: 80 of the 90 ids).
    assert len(set(names)) == len(names) == len(_split_file_names(source))
    assert split_fn(names) == expected
