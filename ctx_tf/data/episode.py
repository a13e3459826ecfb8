"""The episode structure every pipeline yields and every learner consumes."""

import collections

# Shapes and dtypes (as in the official pipeline):
#   support_images     float32 [num_support, height, width, 3], values in [-1, 1]
#   support_labels     int32   [num_support], episode-relative, 0..K-1 in description order
#   support_class_ids  int64   [num_support], absolute class ids of the source
#   query_images       float32 [num_query, height, width, 3]
#   query_labels       int32   [num_query]
#   query_class_ids    int64   [num_query]
Episode = collections.namedtuple(
    "Episode",
    [
        "support_images",
        "support_labels",
        "support_class_ids",
        "query_images",
        "query_labels",
        "query_class_ids",
    ],
)
