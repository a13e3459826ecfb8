"""Property tests: damaged inputs always end in the project's own errors."""

import json
import os
import pathlib
import shutil
import tempfile

import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctx_tf.data import dataset_spec as dataset_spec_lib
from ctx_tf.data import pipeline
from ctx_tf.data import sampling
from ctx_tf.data.dataset_spec import DatasetSpecError, Split
from ctx_tf.data.reading.errors import RecordsError
from ctx_tf.data.writing import spec_writer
from tests.data.helpers import IMAGE_SIDE, write_tiny_source

COUNTS = [4] * 5


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("records")
    spec = write_tiny_source(root, "tiny", COUNTS, (5, 0, 0), images="bands", fmt="PNG")
    with open(spec.record_path(2), "rb") as f:
        return spec, f.read()


def _file_contents(valid):
    # Random bytes, or the valid file cut anywhere before its end.
    return st.one_of(st.binary(max_size=2 * len(valid)),
                     st.integers(0, len(valid) - 1).map(lambda n: valid[:n]))


@given(data=st.data())
@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_damaged_record_file_ends_in_records_error(tiny, data):
    spec, valid = tiny
    contents = data.draw(_file_contents(valid))
    with open(spec.record_path(2), "wb") as f:
        f.write(contents)
    try:
        with pytest.raises(RecordsError, match=r"2\.tfrecords \(class id 2 of source 'tiny'\)"
                                               r".*--check="):
            # 5-way episodes read every class, so class 2's file is read in the first one.
            dataset = pipeline.make_one_source_episode_pipeline(
                spec, False, False, Split.TRAIN,
                sampling.EpisodeDescriptionConfig(num_ways=5, num_support=2, num_query=2),
                image_size=IMAGE_SIDE, shuffle_buffer_size=10, seed=0)
            for _ in pipeline.iterate(dataset.take(2), [spec], Split.TRAIN):
                pass
    finally:
        with open(spec.record_path(2), "wb") as f:
            f.write(valid)


def _valid_spec_text():
    return json.dumps({
        "name": "src", "classes_per_split": {"TRAIN": 2, "VALID": 1, "TEST": 1},
        "images_per_class": {"0": 5, "1": 6, "2": 7, "3": 8},
        "class_names": {"0": "a", "1": "b", "2": "c", "3": "d"},
        "path": "/somewhere/src", "file_pattern": "{}.tfrecords",
        "__class__": "DatasetSpecification"})


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**12) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)


def _mutated_spec():
    spec = json.loads(_valid_spec_text())
    return st.tuples(st.sampled_from(sorted(spec)), _JSON).map(
        lambda kv: json.dumps({**spec, kv[0]: kv[1]}))


def _load(root, contents):
    directory = os.path.join(root, "src")
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    mode = "wb" if isinstance(contents, bytes) else "w"
    with open(os.path.join(directory, "dataset_spec.json"), mode) as f:
        f.write(contents)
    return dataset_spec_lib.load_dataset_spec(directory)


@given(contents=st.one_of(
    st.binary(max_size=200), st.text(max_size=200),
    st.integers(0, len(_valid_spec_text()) - 1).map(lambda n: _valid_spec_text()[:n]),
    _JSON.map(json.dumps)))
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_broken_spec_json_ends_in_dataset_spec_error(tmp_path, contents):
    with pytest.raises(DatasetSpecError, match="dataset_spec.json"):
        _load(str(tmp_path), contents)


@given(contents=_mutated_spec())
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_spec_with_a_wrong_field_loads_with_it_or_ends_in_dataset_spec_error(tmp_path,
                                                                             contents):
    try:
        spec = _load(str(tmp_path), contents)
    except DatasetSpecError as e:
        assert "dataset_spec.json" in str(e)
        return
    # A spec that loads holds the file's values (written back, they are the file), except the
    # path: the records directory replaces whatever the file says.
    expected = dict(json.loads(contents), path=os.path.join(str(tmp_path), "src"))
    written = spec_writer.make_dataset_spec(
        spec.name, spec.path, spec.class_names, spec.images_per_class,
        [spec.classes_per_split[split] for split in Split])
    assert json.loads(spec_writer.spec_to_json(written)) == expected


def test_spec_errors_are_user_errors(tmp_path):
    from ctx_tf.errors import UserError  # pylint: disable=import-outside-toplevel

    with pytest.raises(UserError):
        _load(str(tmp_path), "{")
    assert issubclass(DatasetSpecError, ValueError) and issubclass(RecordsError, ValueError)
    assert tf.errors.OpError not in RecordsError.__mro__


def _png_bytes(seed):
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@given(data=st.data(), strict=st.booleans())
@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_image_bytes_in_the_writer_are_written_skipped_or_refused(tmp_path, data,
                                                                         strict):
    """Whatever bytes an image file holds, the writer writes it, names it as unreadable and
    skips it, or (strict) refuses it with the project's own error: never another exception."""
    from ctx_tf.data.writing.folder import write_source_from_folder
    from ctx_tf.errors import UserError

    valid = _png_bytes(0)
    contents = data.draw(st.one_of(st.binary(max_size=300),
                                   st.integers(0, len(valid) - 1).map(lambda n: valid[:n])))
    # tmp_path is shared by the examples: a fresh folder for each (a drawn name can repeat).
    case = pathlib.Path(tempfile.mkdtemp(prefix="case", dir=tmp_path))
    images = case / "images"
    for c in range(3):
        (images / f"class_{c}").mkdir(parents=True)
        for i in range(2):
            (images / f"class_{c}" / f"{i}.png").write_bytes(_png_bytes(10 * c + i + 1))
    (images / "class_0" / "drawn.png").write_bytes(contents)
    try:
        report = write_source_from_folder(images, case / "records", "src",
                                          splits=(1, 1, 1), strict=strict)
    except UserError as e:
        assert strict and "drawn.png" in str(e)
        assert not (case / "records" / "src").exists()
        return
    unreadable = [where for where, _ in report.unreadable]
    written = report.spec["images_per_class"]["0"]
    assert (written, unreadable) in ((3, []), (2, [str(images / "class_0" / "drawn.png")]))
