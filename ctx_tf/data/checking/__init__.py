"""The consistency check of a source folder in the official layout (`consistency`), and the
comparison of its spec with a reference spec such as the official one (`reference_spec`);
`python -m ctx_tf.data.writer --check=DIR` runs it."""
