"""Omniglot in miniature in its npz + index form (`write_packed`)."""

import json

import numpy as np


def write_packed(root, drawers=3, size=9):
    """A tiny Omniglot in the npz + index format: all five validation alphabets, two more
    background alphabets (listed out of sorted order) and two evaluation alphabets."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(0)
    background = [("Zeta", 2), ("Blackfoot_(Canadian_Aboriginal_Syllabics)", 1), ("Alpha", 3),
                  ("Ojibwe_(Canadian_Aboriginal_Syllabics)", 1), ("Tagalog", 1),
                  ("Inuktitut_(Canadian_Aboriginal_Syllabics)", 2), ("Alphabet_of_the_Magi", 1)]
    evaluation = [("Yod", 2), ("Bet", 1)]
    index = []
    for set_name, alphabets in (("images_background", background),
                                ("images_evaluation", evaluation)):
        rows = sum(n for _, n in alphabets)
        images = rng.rand(rows, drawers, size, size) > 0.3
        np.savez_compressed(root / f"{set_name}.npz", images=images,
                            labels=np.repeat(np.arange(rows)[:, None], drawers, 1))
        row = 0
        for name, n in alphabets:
            index.append({"alphabet": name, "set": set_name, "npz_file": f"{set_name}.npz",
                          "npz_first_row": row, "num_characters": n})
            row += n
    (root / "omniglot_index.json").write_text(json.dumps({"alphabets": index}))
    return root
