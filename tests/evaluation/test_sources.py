"""The one loader of a run's sources: records root + names -> checked specs."""

import pytest

from ctx_tf.data.dataset_spec import Split
from ctx_tf.data.reading.errors import ReaderError
from ctx_tf.evaluation import sources
from tests.conftest import official_spec_dir
from tests.data.helpers import write_tiny_source


@pytest.fixture(scope="module")
def records_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("records")
    write_tiny_source(root, "tiny")
    write_tiny_source(root, "other", seed=1)
    (root / "broken").mkdir()
    (root / "broken" / "dataset_spec.json").write_text('{"name": "broken", ')
    (root / "no_spec").mkdir()
    return str(root)


def test_specs_of_the_named_sources(records_root):
    specs = sources.load_sources(records_root, ["other", "tiny"], Split.TEST)
    assert list(specs) == ["other", "tiny"] and specs["tiny"].name == "tiny"
    assert sources.describe("tiny", specs["tiny"]) == "tiny (train 4, valid 4, test 6 classes)"
    assert sources.available_sources(records_root) == ["broken", "other", "tiny"]  # no no_spec


@pytest.mark.parametrize("names, root, message", [
    (["tiny", "nope"], None,
     r"unknown source 'nope': no .*/nope/dataset_spec.json \(--datasets\). Sources under "
     r".*: broken, other, tiny\. Meta-Dataset sources: ilsvrc_2012, "),
    (["nope", "gone"], None, r"unknown sources 'nope', 'gone': no .*/<name>/dataset_spec.json"),
    (["tiny", "tiny"], None, r"sources listed more than once \(--datasets\): \['tiny'\]"),
    ([], None, r"--datasets names no source"),
    (["tiny"], "missing", r"--records_root_dir=.*/missing is not a directory"),
    (["tiny"], "", r"no records root for tiny \(--datasets\): pass --records_root_dir"),
    (["broken"], None, r"source 'broken' \(--datasets\): .*broken/dataset_spec.json"),
])
def test_mistakes_name_the_flag_and_the_file(records_root, names, root, message):
    root = records_root if root is None else (f"{records_root}/{root}" if root else root)
    with pytest.raises(sources.SourceError, match=message):
        sources.load_sources(root, names, Split.TEST)


def test_the_binding_that_named_them_is_named(records_root):
    with pytest.raises(sources.SourceError, match=r"\(benchmark.train_datasets\)"):
        sources.load_sources(records_root, ["nope"], Split.TRAIN, "benchmark.train_datasets")


def test_the_split_is_checked_only_when_given(tmp_path):
    root = tmp_path / "records"
    write_tiny_source(root, "tiny")
    (root / "tiny" / "9.tfrecords").unlink()  # a TEST class
    assert sources.load_sources(str(root), ["tiny"])  # the spec alone
    sources.load_sources(str(root), ["tiny"], Split.TRAIN)
    with pytest.raises(ReaderError, match=r"9.tfrecords \(class id 9\)"):
        sources.load_sources(str(root), ["tiny"], Split.TEST)


def test_ilsvrc_2012_v2_has_no_test_split(tmp_path):
    official_spec_dir(tmp_path, "ilsvrc_2012_v2")
    with pytest.raises(sources.SourceError,
                       match=r"'ilsvrc_2012_v2' \(--datasets\) has no TEST classes \(train "
                             r"1000, valid 0, test 0 classes"):
        sources.load_sources(str(tmp_path), ["ilsvrc_2012_v2"], "test")
