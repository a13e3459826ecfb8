"""Which classes (or superclasses) of a new source go to TRAIN, VALID and TEST.

Splits, when not given explicitly, are drawn with ``numpy.random.RandomState(seed)``: the
items (classes, or superclasses for a bi-level source) are permuted, the first
``round(valid_fraction * N)`` of the permutation become VALID, the next
``round(test_fraction * N)`` TEST, the rest TRAIN; inside each split the items keep their
input order (sorted names for folders). Defaults: 0.7 / 0.15 / 0.15, seed 0.
"""

import json
from typing import Sequence

import numpy as np

from ctx_tf.data.dataset_spec import SPLIT_NAMES
from ctx_tf.data.writing.errors import SourceWriteError

DEFAULT_VALID_FRACTION = 0.15
DEFAULT_TEST_FRACTION = 0.15
DEFAULT_SEED = 0


def _normalize_split_key(key):
    k = str(key).upper()
    return {"TRAIN": "TRAIN", "VALID": "VALID", "VALIDATION": "VALID", "TEST": "TEST"}.get(k)


def resolve_splits(item_names: Sequence[str], splits=None, seed=DEFAULT_SEED,
                   valid_fraction=DEFAULT_VALID_FRACTION,
                   test_fraction=DEFAULT_TEST_FRACTION, what="class"):
    """Assigns items (classes or superclasses) to TRAIN/VALID/TEST.

    Args:
      item_names: the items, in input order.
      splits: None (seeded random split by fractions), a triple of counts
        ``(n_train, n_valid, n_test)`` taken in input order, or explicit lists: a mapping
        from split name ("TRAIN"/"VALID"/"TEST", any case, "validation" allowed) or a triple
        of lists, holding item indices or names, kept in list order. Every item must be
        assigned exactly once.
      seed, valid_fraction, test_fraction: for the random split.
      what: word used in error messages.

    Returns:
      A list of three lists of item indices (TRAIN, VALID, TEST).
    """
    n = len(item_names)
    if splits is None:
        if not (0 <= valid_fraction <= 1 and 0 <= test_fraction <= 1
                and valid_fraction + test_fraction <= 1):
            raise SourceWriteError(
                f"invalid split fractions valid={valid_fraction} test={test_fraction}")
        n_valid = int(round(valid_fraction * n))
        n_test = min(int(round(test_fraction * n)), n - n_valid)
        perm = np.random.RandomState(seed).permutation(n)
        valid = sorted(perm[:n_valid].tolist())
        test = sorted(perm[n_valid:n_valid + n_test].tolist())
        train = sorted(perm[n_valid + n_test:].tolist())
        return [train, valid, test]
    if (not isinstance(splits, dict) and len(splits) == 3
            and all(isinstance(m, (list, tuple, range)) for m in splits)):
        splits = dict(zip(SPLIT_NAMES, splits))
    if isinstance(splits, dict):
        index_of = {}
        for i, item in enumerate(item_names):
            index_of.setdefault(item, i)
        out = {s: [] for s in SPLIT_NAMES}
        for key, members in splits.items():
            split = _normalize_split_key(key)
            if split is None:
                raise SourceWriteError(f"unknown split name {key!r} (use TRAIN, VALID, TEST)")
            for m in members:
                if isinstance(m, (int, np.integer)) and not isinstance(m, bool):
                    if not 0 <= int(m) < n:
                        raise SourceWriteError(f"split {split}: {what} index {m} out of range "
                                               f"[0, {n})")
                    out[split].append(int(m))
                elif m in index_of:
                    out[split].append(index_of[m])
                else:
                    raise SourceWriteError(f"split {split}: unknown {what} {m!r}")
        result = [out[s] for s in SPLIT_NAMES]
        _check_partition(result, item_names, what)
        return result
    counts = [int(c) for c in splits]
    if len(counts) != 3 or min(counts) < 0 or sum(counts) != n:
        raise SourceWriteError(
            f"split counts {tuple(splits)} must be three non-negative numbers summing to the "
            f"number of {what}es ({n})")
    a, b = counts[0], counts[0] + counts[1]
    return [list(range(0, a)), list(range(a, b)), list(range(b, n))]


def _check_partition(result, item_names, what):
    seen = {}
    for split, members in zip(SPLIT_NAMES, result):
        for m in members:
            if m in seen:
                raise SourceWriteError(
                    f"{what} {item_names[m]!r} is assigned to both {seen[m]} and {split}")
            seen[m] = split
    missing = [item_names[i] for i in range(len(item_names)) if i not in seen]
    if missing:
        raise SourceWriteError(
            f"{len(missing)} {what}(es) are in no split: {missing[:10]}")


def order_classes(class_names, superclasses, split_items):
    """Returns (ordered class indices, classes per split, superclass info or None)."""
    if superclasses is None:
        order = [i for members in split_items for i in members]
        return order, [len(m) for m in split_items], None
    order, per_split, sc_names, sc_sizes = [], [], [], []
    for members in split_items:
        n = 0
        for k in members:
            sc_name, sc_classes = superclasses[k]
            sc_names.append(sc_name)
            sc_sizes.append(len(sc_classes))
            order.extend(sc_classes)
            n += len(sc_classes)
        per_split.append(n)
    seen = set()
    for i in order:
        if i in seen:
            raise SourceWriteError(f"class {class_names[i]!r} is in more than one superclass")
        seen.add(i)
    missing = [class_names[i] for i in range(len(class_names)) if i not in seen]
    if missing:
        raise SourceWriteError(f"{len(missing)} class(es) are in no superclass: {missing[:10]}")
    return order, per_split, (sc_names, [len(m) for m in split_items], sc_sizes)


def load_splits_file(path):
    """The splits of a JSON splits file (an object with lists train/valid/test)."""
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise SourceWriteError(f"splits file {path}: invalid JSON ({e})") from e
    if not isinstance(data, dict):
        raise SourceWriteError(f"splits file {path}: expected an object with train/valid/test")
    return data
