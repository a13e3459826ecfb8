"""README.md's "In Python" example runs as written (on a tiny bi-level source made here)."""

import pathlib
import re

import numpy as np

import ctx_tf

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_example():
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## In Python"):]
    match = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert match, "README.md has no python block under '## In Python'"
    return match.group(1)


def test_the_python_example_runs(tmp_path):
    code = python_example()
    assert '"/data/records/omniglot"' in code, "the example's records path changed"
    rng = np.random.default_rng(0)
    # Two alphabets of five characters, eight drawings each, all TRAIN (the example's split).
    arrays = [rng.integers(0, 2, (8, 28, 28)).astype(bool) for _ in range(10)]
    ctx_tf.write_source_from_arrays(
        tmp_path, "omniglot", arrays, superclasses=[("a", range(5)), ("b", range(5, 10))],
        splits={"TRAIN": ["a", "b"]})
    code = code.replace('"/data/records/omniglot"', repr(str(tmp_path / "omniglot")))
    namespace = {}
    exec(compile(code, str(README) + " (In Python)", "exec"), namespace)  # noqa: S102
    out, grads = namespace["out"], namespace["grads"]
    assert out.logits.shape[1] == int(np.max(namespace["episode"].support_labels)) + 1
    assert np.isfinite(float(out.loss))
    assert len(grads) == len(namespace["learner"].trainable_variables)
    assert all(g is not None for g in grads)
