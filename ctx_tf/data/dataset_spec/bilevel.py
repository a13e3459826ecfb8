"""The bi-level spec type (Omniglot): classes grouped into superclasses, superclasses split
into contiguous ranges."""

from ctx_tf.data.dataset_spec.base import (DEFAULT_FILE_PATTERN, SpecBase, Split, as_split,
                                           check_contiguous)
from ctx_tf.data.dataset_spec.flat import DatasetSpecification


class BiLevelDatasetSpecification(SpecBase):
    """A source whose classes belong to superclasses (Omniglot: characters of alphabets).

    Superclasses are split into contiguous ranges; the classes of superclass k are the
    `classes_per_superclass[k]` ids following those of superclasses 0..k-1.
    """

    def __init__(self, name, superclasses_per_split, classes_per_superclass, images_per_class,
                 superclass_names, class_names, path, file_pattern=DEFAULT_FILE_PATTERN,
                 source="<dataset spec>"):
        super().__init__(name, class_names, path, file_pattern, source)
        self.superclasses_per_split = superclasses_per_split
        self.classes_per_superclass = classes_per_superclass
        self.images_per_class = images_per_class
        self.superclass_names = superclass_names
        self._validate()
        self.classes_per_split = {
            split: sum(self.classes_per_superclass[s] for s in self.get_superclasses(split))
            for split in Split
        }

    def num_images(self, class_id):
        return DatasetSpecification.num_images(self, class_id)

    def get_superclasses(self, split):
        """The superclass ids of `split`, a contiguous `range`."""
        split = as_split(split)
        offset = sum(self.superclasses_per_split[s] for s in Split if s.value < split.value)
        return range(offset, offset + self.superclasses_per_split[split])

    def first_class_of_superclass(self, superclass_id):
        return sum(self.classes_per_superclass[k] for k in range(superclass_id))

    def get_classes_of_superclass(self, superclass_id):
        """The absolute class ids of one superclass, a contiguous `range`."""
        first = self.first_class_of_superclass(superclass_id)
        return range(first, first + self.classes_per_superclass[superclass_id])

    def get_class_ids_from_superclass_subclass_inds(self, split, superclass_id, class_inds):
        """Maps indices inside a superclass to (split-relative ids, absolute ids)."""
        split = as_split(split)
        if superclass_id not in self.get_superclasses(split):
            raise ValueError(
                f"{self.name}: superclass {superclass_id} is not in split {split.name}"
            )
        absolute = [self.first_class_of_superclass(superclass_id) + int(i) for i in class_inds]
        offset = self.get_classes(split).start
        return [a - offset for a in absolute], absolute

    def _validate(self):
        num_superclasses = sum(self.superclasses_per_split.values())
        check_contiguous(self, "classes_per_superclass", self.classes_per_superclass,
                          num_superclasses, "the sum of superclasses_per_split")
        check_contiguous(self, "superclass_names", self.superclass_names, num_superclasses,
                          "the sum of superclasses_per_split")
        total = sum(self.classes_per_superclass.values())
        check_contiguous(self, "class_names", self.class_names, total,
                          "the sum of classes_per_superclass")
        check_contiguous(self, "images_per_class", self.images_per_class, total,
                          "the sum of classes_per_superclass")
