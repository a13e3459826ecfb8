"""CUB_200_2011 in miniature (`write`): classes.txt and images/<class>/ folders."""

from tests.data.sources.raw_trees import tiny_jpeg


def write(root, names):
    """CUB_200_2011 with classes.txt and 1..3 images per class, written out of name order."""
    lines = "".join(f"{i + 1} {n}\n" for i, n in enumerate(names))
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text(lines)
    for k, name in enumerate(names):
        folder = root / "images" / name
        folder.mkdir(parents=True)
        for j in reversed(range(k % 3 + 1)):
            (folder / f"{name}_{j:04d}_{k}.jpg").write_bytes(tiny_jpeg())
    return root
