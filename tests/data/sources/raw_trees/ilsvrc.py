"""ILSVRC-2012 train/ in miniature (`write_subset`): four synset folders (`SUBSET`)."""

from tests.data.sources.raw_trees import image_bytes


def jpeg(shade=90):
    """The bytes of a small RGB JPEG of red level `shade`."""
    return image_bytes((4, 3), (shade, 40, 200))


# Two TRAIN synsets, one VALID (bear, with a listed duplicate) and one TEST synset.
SUBSET = {"n01440764": ["n01440764_9.JPEG", "n01440764_10.JPEG", "n01440764_2.jpeg"],
          "n01443537": ["n01443537_1.JPEG"],
          "n02133161": ["n02133161_3419.JPEG", "n02133161_5.JPEG", "n02133161_40.JPEG"],
          "n02666196": ["n02666196_7.JPEG", "n02666196_8.JPEG"]}


def write_subset(root):
    """`root/<synset>/<file>` for the synsets and files of SUBSET; returns `root`."""
    for synset, files in SUBSET.items():
        (root / synset).mkdir()
        for k, filename in enumerate(files):
            (root / synset / filename).write_bytes(jpeg(20 * k))
    return root
