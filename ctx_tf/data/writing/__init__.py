"""The write path: image data to a source in the official layout (class record files and
`dataset_spec.json`).

`arrays` (images held in memory), `folder` (a folder tree of images), `synthetic` (copies of
the official sources' shapes for benchmarks) and the Meta-Dataset converters of
`ctx_tf.data.sources` all end here: a `plan` (what each record holds) is written by the
`engine` (parallel, resumable, spec last, one bad-image policy), which tells its user through
`report`; `plan_spec` and `spec_writer` make the spec, `image_encoding` the images, `splits`
the class splits a user asks for, `archives` reads images in place from a download's archives.
"""
