"""dtd in miniature (`write`): images/<texture>/ folders."""

from tests.data.sources.raw_trees import tiny_jpeg


def write(root, names):
    """dtd/images/<texture>/<texture>_NNNN.jpg, 1..3 images per texture."""
    for k, name in enumerate(names):
        folder = root / "images" / name
        folder.mkdir(parents=True)
        for j in reversed(range(k % 3 + 1)):
            (folder / f"{name}_{j:04d}.jpg").write_bytes(tiny_jpeg())
    return root
