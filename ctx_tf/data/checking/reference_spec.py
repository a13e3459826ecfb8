"""A source's spec beside a reference spec (a spec file, a source folder, or the shipped
official spec of the Meta-Dataset source of that name): every difference, one line each."""

import os

from ctx_tf.data import facts
from ctx_tf.data.dataset_spec import (BiLevelDatasetSpecification, DatasetSpecError, Split,
                                      dataset_spec_from_dict, load_dataset_spec)

# --reference_spec value naming the shipped official spec of the checked source.
OFFICIAL = "official"


def load_reference(reference_spec, name):
    """(spec, label for its differences) of a spec, a spec file, a source folder, or
    "official": the shipped official spec of the Meta-Dataset source `name`."""
    if hasattr(reference_spec, "num_classes"):
        return reference_spec, "reference spec"
    if reference_spec == OFFICIAL:
        try:
            data = facts.dataset_spec(name)
        except KeyError:
            raise DatasetSpecError(
                f"--reference_spec=official: {name!r} is not a Meta-Dataset source; official "
                f"specs exist for {', '.join(facts.SOURCES)}") from None
        return dataset_spec_from_dict(data, source=f"official {name} spec"), \
            f"official {name} spec"
    path = os.fspath(reference_spec)
    if os.path.isdir(path):
        return load_dataset_spec(path, check_name=False), f"reference spec {path}"
    spec = load_dataset_spec(os.path.dirname(os.path.abspath(path)), check_name=False,
                             spec_file=path)
    return spec, f"reference spec {path}"


def compare_specs(spec, reference, label="reference spec"):
    """Every difference between ``spec`` and ``reference``: type, name, split sizes, class
    names and images per class (and superclasses of bi-level specs), one line each."""
    out = []
    if type(spec) is not type(reference):
        out.append(f"{label}: spec type {type(spec).__name__}, reference "
                   f"{type(reference).__name__}")
    if spec.name != reference.name:
        out.append(f"{label}: name {spec.name!r}, reference {reference.name!r}")
    for split in Split:
        mine, theirs = spec.classes_per_split[split], reference.classes_per_split[split]
        if mine != theirs:
            out.append(f"{label}: {split.name} has {mine} classes, reference {theirs}")
    if (isinstance(spec, BiLevelDatasetSpecification)
            and isinstance(reference, BiLevelDatasetSpecification)):
        for k in range(max(len(spec.superclass_names), len(reference.superclass_names))):
            mine = (spec.superclass_names.get(k), spec.classes_per_superclass.get(k))
            theirs = (reference.superclass_names.get(k), reference.classes_per_superclass.get(k))
            if mine != theirs:
                out.append(f"{label}: superclass {k} is {mine[0]!r} with {mine[1]} classes, "
                           f"reference {theirs[0]!r} with {theirs[1]}")
    for class_id in range(max(spec.num_classes, reference.num_classes)):
        if class_id >= spec.num_classes:
            out.append(f"{label}: class {class_id} ({reference.class_names[class_id]!r}) "
                       "is missing")
            continue
        if class_id >= reference.num_classes:
            out.append(f"{label}: class {class_id} ({spec.class_names[class_id]!r}) is not in "
                       "the reference")
            continue
        name, ref_name = spec.class_names[class_id], reference.class_names[class_id]
        if name != ref_name:
            out.append(f"{label}: class {class_id} is {name!r}, reference {ref_name!r}")
        images, ref_images = spec.num_images(class_id), reference.num_images(class_id)
        if images != ref_images:
            out.append(f"{label}: class {class_id} ({name!r}) has {images} images, "
                       f"reference {ref_images}")
    return out
