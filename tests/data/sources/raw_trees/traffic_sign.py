"""GTSRB in miniature (`write`): Final_Training/Images/<class>/ folders of PPM files and their
GT csv."""

from tests.data.sources.raw_trees import image_bytes


# The permutation RandomState(23).shuffle gives 7 items: pinned, so a NumPy release that
# changed the legacy stream would fail here rather than silently reorder the records.
PERMUTATION_OF_7 = [6, 4, 5, 2, 1, 0, 3]


def ppm():
    """The bytes of a small red PPM image."""
    return image_bytes((5, 4), (200, 0, 0), "PPM")


def write(root, sizes):
    """GTSRB/Final_Training/Images/<iiiii>/ with <track>_<frame>.ppm files and GT-<iiiii>.csv."""
    image = ppm()
    for class_id, size in enumerate(sizes):
        folder = root / "Final_Training" / "Images" / f"{class_id:05d}"
        folder.mkdir(parents=True)
        (folder / f"GT-{class_id:05d}.csv").write_text("Filename;Width;Height\n")
        for n in range(size):
            (folder / f"{n // 3:05d}_{n % 3:05d}.ppm").write_bytes(image)
    return root


def names(size):
    """The file names `write` gives a class of `size` images."""
    return [f"{n // 3:05d}_{n % 3:05d}.ppm" for n in range(size)]
