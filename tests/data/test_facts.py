"""The shipped benchmark facts: equal to the official files, reproducible, readable without them."""

import gzip
import hashlib
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from ctx_tf.data import dataset_spec as dataset_spec_lib
from ctx_tf.data import facts
from tests.conftest import REPO_ROOT, official_sha256, shared_path

# All cheap: the TensorFlow 2.15.1 job (`-m compat`) runs every test here.
pytestmark = pytest.mark.compat

FACTS_DIR = REPO_ROOT / "ctx_tf" / "data" / "facts"
SCRIPT = REPO_ROOT / "tools" / "derive_benchmark_facts.py"
SPLIT_SOURCES = ("aircraft", "cu_birds", "dtd", "fungi", "mscoco", "quickdraw", "traffic_sign",
                 "vgg_flower")


def _official(*parts):
    return shared_path("meta_dataset_specs", *parts)


def _non_comment_lines(filename):
    return [line for line in _official(filename).read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]


def _official_texts(payload):
    """The texts the official JSON files are written in (each file uses one of them): two-space
    indents, with Python 2's ", " item separator (trailing spaces) or without, with or without
    a final newline."""
    for separators in ((", ", ": "), (",", ": ")):
        text = json.dumps(payload, indent=2, separators=separators)
        yield text
        yield text + "\n"


def _is_the_official_file(payload, filename):
    digest = official_sha256(filename)
    return any(hashlib.sha256(text.encode("utf-8")).hexdigest() == digest
               for text in _official_texts(payload))


# The JSON facts hold every value of the official files: written back in the official files'
# format, each is byte for byte the file whose sha256 the derivation recorded in the NOTICE
# (re-deriving the NOTICE from the official files is test_rerunning_the_script_...).
@pytest.mark.parametrize("name", facts.SOURCES)
def test_dataset_spec_is_the_official_file(name):
    assert _is_the_official_file(facts.dataset_spec(name), f"{name}_dataset_spec.json")


@pytest.mark.parametrize("name", SPLIT_SOURCES)
def test_splits_are_the_official_file(name):
    splits = facts.splits(name)
    assert _is_the_official_file(splits, f"{name}_splits.json")
    assert sorted(splits) == ["test", "train", "valid"]


@pytest.mark.parametrize("name", ["ilsvrc_2012", "ilsvrc_2012_v2"])
def test_num_leaf_images_are_the_official_cache(name):
    assert _is_the_official_file(facts.num_leaf_images(name), f"{name}_num_leaf_images.json")


def test_a_changed_value_is_not_the_official_file():
    spec = facts.dataset_spec("dtd")
    spec["images_per_class"]["0"] += 1
    assert not _is_the_official_file(spec, "dtd_dataset_spec.json")
    assert not _is_the_official_file(facts.splits("dtd"), "aircraft_splits.json")


def test_text_lists_are_the_official_files_without_comments():
    # Their comments are not shipped, so only the official files themselves can show this.
    for name, filename in [("traffic_sign", "TrafficSign_labels.txt"),
                           ("vgg_flower", "VggFlower_labels.txt")]:
        lines = _official(filename).read_text(encoding="utf-8").splitlines()
        assert facts.labels(name) == _non_comment_lines(filename) == lines[1:]
        # The label lists name every class of their source, in class-id order.
        assert len(lines[1:]) == len(facts.dataset_spec(name)["class_names"])
    expected = set()
    for filename in ("ImageNet_CUBirds_duplicates.txt", "ImageNet_Caltech101_duplicates.txt",
                     "ImageNet_Caltech256_duplicates.txt"):
        expected.update(line.split()[0] for line in _non_comment_lines(filename))
    assert facts.ilsvrc_duplicates() == expected


def test_ilsvrc_duplicates_are_a_frozen_set_of_training_files():
    duplicates = facts.ilsvrc_duplicates()
    assert isinstance(duplicates, frozenset) and len(duplicates) == 403
    assert "n01531178/n01531178_12730.JPEG" in duplicates
    assert all(re.fullmatch(r"(n\d{8})/\1_\d+\.JPEG", f) for f in duplicates)


def test_rerunning_the_script_reproduces_the_committed_files(tmp_path):
    specs_dir = _official()
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--specs_dir", str(specs_dir), "--output_dir",
         str(tmp_path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    produced = sorted(p.name for p in tmp_path.iterdir())
    assert produced == sorted(p.name for p in FACTS_DIR.iterdir()
                              if p.is_file() and p.name != "__init__.py")
    for name in produced:
        new, committed = (tmp_path / name).read_bytes(), (FACTS_DIR / name).read_bytes()
        if name.endswith(".gz"):
            # Compressed bytes may differ between zlib builds; the content may not.
            new, committed = gzip.decompress(new), gzip.decompress(committed)
        assert new == committed, f"{name} differs from what the script derives; re-run it"


def test_notice_names_provenance_and_carries_the_license():
    notice = (FACTS_DIR / "NOTICE").read_text(encoding="utf-8")
    assert "google-research/meta-dataset" in notice
    assert "167609505780a3dc604f50206253d65839093be9" in notice
    assert "meta_dataset/dataset_conversion/splits/fungi_splits.json" in notice
    assert "Apache License" in notice and "Version 2.0" in notice
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in notice


def test_script_names_missing_official_files(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--specs_dir", str(tmp_path), "--output_dir",
         str(tmp_path / "out")], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "derive_benchmark_facts: error:" in result.stderr
    assert "aircraft_dataset_spec.json" in result.stderr
    assert not (tmp_path / "out").exists()


def test_loader_reads_package_data_only(tmp_path):
    # A process whose reference material is absent and whose working directory is elsewhere.
    code = (
        "from ctx_tf.data import facts\n"
        "spec = facts.dataset_spec('traffic_sign')\n"
        "print(spec['classes_per_split']['TEST'], len(facts.labels('traffic_sign')),\n"
        "      len(facts.splits('dtd')['test']), len(facts.ilsvrc_duplicates()),\n"
        "      facts.num_leaf_images('ilsvrc_2012')['n01440764'])\n"
    )
    env = dict(os.environ, CTX_TF_SHARED_DIR=str(tmp_path / "absent"),
               PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["43", "43", "7", "403", "1300"]


def test_shipped_specs_parse_as_valid_specs():
    for name in facts.SOURCES:
        spec = dataset_spec_lib.dataset_spec_from_dict(facts.dataset_spec(name))
        assert spec.name == name
    assert sum(dataset_spec_lib.dataset_spec_from_dict(
        facts.dataset_spec("ilsvrc_2012")).classes_per_split.values()) == 1000


def test_results_are_copies():
    facts.dataset_spec("dtd")["class_names"].clear()
    facts.splits("dtd")["test"].clear()
    facts.labels("vgg_flower").clear()
    facts.num_leaf_images("ilsvrc_2012").clear()
    assert len(facts.dataset_spec("dtd")["class_names"]) == 47
    assert len(facts.splits("dtd")["test"]) == 7
    assert len(facts.labels("vgg_flower")) == 102
    assert len(facts.num_leaf_images("ilsvrc_2012")) == 1000


@pytest.mark.parametrize("lookup,name,known", [
    (facts.dataset_spec, "my_source", "ilsvrc_2012"),
    (facts.splits, "omniglot", "aircraft"),
    (facts.labels, "dtd", "traffic_sign"),
    (facts.num_leaf_images, "omniglot", "ilsvrc_2012_v2"),
])
def test_unknown_names_raise_key_error_naming_the_known_ones(lookup, name, known):
    with pytest.raises(KeyError, match=known) as info:
        lookup(name)
    assert repr(name) in str(info.value)


def test_sources_are_the_shipped_specs():
    assert len(facts.SOURCES) == 11
    for name in facts.SOURCES:
        assert facts.dataset_spec(name)["name"] == name
    with pytest.raises(KeyError):
        facts.dataset_spec("demo")
    assert pathlib.Path(facts.__file__).parent == FACTS_DIR
