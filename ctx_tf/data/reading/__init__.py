"""The read path: records on disk to the raw strings of an episode or a batch, then images.

`record_format` (the TFRecord wire format of an official source), `class_files` (one class
file read as its shuffled, repeated stream, by record offset), `open_files` (the bounded pool of
open files), `shuffle_order` (tf.data's shuffle orders, computed in Python), `episode_reader`
(descriptions to the flush | support | query stream of an episode; the up-front checks),
`batch_reader` (batches over every class of a split), `decoder` (record -> image) and `errors`.
"""
