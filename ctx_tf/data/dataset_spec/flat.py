"""The flat spec type: classes split into contiguous TRAIN / VALID / TEST id ranges."""

from ctx_tf.data.dataset_spec.base import DEFAULT_FILE_PATTERN, SpecBase, check_contiguous


class DatasetSpecification(SpecBase):
    """A source whose classes are split into contiguous TRAIN / VALID / TEST ranges."""

    def __init__(self, name, classes_per_split, images_per_class, class_names, path,
                 file_pattern=DEFAULT_FILE_PATTERN, source="<dataset spec>"):
        super().__init__(name, class_names, path, file_pattern, source)
        self.classes_per_split = classes_per_split
        self.images_per_class = images_per_class
        self._validate()

    def num_images(self, class_id):
        try:
            return self.images_per_class[class_id]
        except KeyError:
            raise ValueError(
                f"{self.name}: class id {class_id} is not in [0, {self.num_classes})"
            ) from None

    def _validate(self):
        total = sum(self.classes_per_split.values())
        check_contiguous(self, "class_names", self.class_names, total,
                          "the sum of classes_per_split")
        check_contiguous(self, "images_per_class", self.images_per_class, total,
                          "the sum of classes_per_split")
