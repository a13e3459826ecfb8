"""Tests of `python -m ctx_tf.data.sources`: flags, one-line errors, kill and resume."""

import io
import os
import re
import signal
import subprocess
import sys
import tarfile
import time

import pytest
from absl import flags

from ctx_tf.data import sources
from ctx_tf.data.sources import __main__ as cli
from ctx_tf.data.writing.errors import SourceConversionError
from tests.data.sources import toy_source
from tests.data.sources.raw_trees import omniglot as omniglot_tree


def _flags(*args):
    fv = cli.define_flags(flags.FlagValues())
    fv(["sources", *args])
    return fv


@pytest.fixture(name="toy_registered")
def _toy_registered(monkeypatch):
    monkeypatch.setitem(sources.MODULES, "toy", "tests.data.sources.toy_source")
    monkeypatch.setattr(sources, "SOURCES", sources.SOURCES + ("toy",))


def test_every_source_is_registered_and_help_says_what_raw_dir_holds():
    assert set(sources.SOURCES) == {
        "ilsvrc_2012", "ilsvrc_2012_v2", "omniglot", "aircraft", "cu_birds", "dtd", "quickdraw",
        "fungi", "vgg_flower", "traffic_sign", "mscoco", "mini_imagenet"}
    help_text = _flags()["raw_dir"].help
    assert "omniglot: the Omniglot download: the unzipped folders images_background/" in help_text
    for name in sources.SOURCES:
        assert f"\n  {name}: " in help_text


def test_missing_converter_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sources.MODULES, "dtd", "ctx_tf.data.sources.no_such_module")
    with pytest.raises(SourceConversionError,
                       match="source 'dtd': its converter ctx_tf.data.sources.no_such_module is "
                             "not in this installation"):
        sources.module("dtd")
    with pytest.raises(SourceConversionError, match="unknown source 'nope'; known sources: "):
        cli.run_cli(_flags("--source=nope", "--raw_dir=x", "--records_root_dir=y"))


def test_toy_source_through_the_cli(toy_registered, tmp_path, capsys):
    raw = toy_source.make_raw(str(tmp_path / "raw"))
    assert cli.run_cli(_flags("--source=toy", f"--raw_dir={raw}",
                              f"--records_root={tmp_path / 'rec'}", "--workers=1")) == 0
    out = capsys.readouterr().out
    assert f"reading toy raw data in {raw}" in out and "5 classes, 20 images" in out
    os.remove(os.path.join(raw, "annotations.txt"))
    with pytest.raises(SourceConversionError,
                       match=f"^{os.path.join(raw, 'annotations.txt')}: not found; expected"):
        cli.run_cli(_flags("--source=toy", f"--raw_dir={raw}", f"--records_root_dir={tmp_path}"))


def test_several_sources_take_one_named_raw_dir_each(toy_registered, tmp_path):
    with pytest.raises(SourceConversionError, match="--raw_dir missing for toy"):
        cli.run_cli(_flags("--source=omniglot,toy", "--raw_dir=omniglot=/a",
                           f"--records_root_dir={tmp_path}"))
    with pytest.raises(SourceConversionError, match="every --raw_dir must be NAME=DIR"):
        cli.run_cli(_flags("--source=omniglot,toy", "--raw_dir=/a", "--raw_dir=toy=/b",
                           f"--records_root_dir={tmp_path}"))


def _run(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "ctx_tf.data.sources", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_user_mistake_is_one_line_and_exit_2(tmp_path):
    proc = _run("--source=omniglot", f"--raw_dir={tmp_path / 'nope'}",
                f"--records_root_dir={tmp_path / 'rec'}")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert err.strip().splitlines()[-1] == (
        f"ctx_tf.data.sources: error: {tmp_path / 'nope'}: the Omniglot raw folder does not "
        "exist")
    assert "Traceback" not in err and not (tmp_path / "rec").exists()


def test_an_archive_that_is_not_the_ilsvrc_train_tar_is_one_line(tmp_path):
    val = tmp_path / "ILSVRC2012_img_val.tar"  # the validation download: JPEGs, no synset tars
    with tarfile.open(val, "w") as tar:
        info = tarfile.TarInfo("ILSVRC2012_val_00000001.JPEG")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"\xff\xd8\xff\xd9"))
    before = sorted(os.listdir(tmp_path))
    proc = _run("--source=ilsvrc_2012", f"--raw_dir={val}",
                f"--records_root_dir={tmp_path / 'rec'}")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert err.strip().splitlines()[-1] == (
        f"ctx_tf.data.sources: error: {val}: member ILSVRC2012_val_00000001.JPEG is not a "
        "<synset>.tar; expected ILSVRC2012_img_train.tar, whose members are the 1000 "
        "<synset>.tar of the training images")
    assert "Traceback" not in err and sorted(os.listdir(tmp_path)) == before


@pytest.mark.slow
def test_killed_conversion_resumes(tmp_path):
    raw = omniglot_tree.write_packed(tmp_path / "raw", drawers=20, size=105)
    args = ("--source=omniglot", f"--raw_dir={raw}", f"--records_root={tmp_path / 'rec'}",
            "--workers=1")
    out = tmp_path / "rec" / "omniglot"
    proc = _run(*args)
    deadline = time.time() + 120
    while not (out.is_dir() and any(p.endswith(".tfrecords") for p in os.listdir(out))) and (
            time.time() < deadline):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL  # killed, not finished
    assert not (out / "dataset_spec.json").exists()
    done = sorted(p for p in os.listdir(out) if p.endswith(".tfrecords"))
    proc = _run(*args)
    stdout, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    # The killed run was partial: the rerun keeps what the first one recorded as complete and
    # writes the rest.
    resumed = re.search(r"14 classes, (\d+) already complete, (\d+) to write", stdout)
    assert resumed and int(resumed.group(2)) > 0, stdout
    proc = _run("--source=omniglot", f"--raw_dir={raw}", f"--records_root={tmp_path / 'ref'}",
                "--workers=1")
    assert proc.communicate(timeout=300) and proc.returncode == 0
    ref = tmp_path / "ref" / "omniglot"
    for name in os.listdir(ref):
        if name.endswith(".tfrecords") or name == "dataset_spec.json":
            assert (out / name).read_bytes() == (ref / name).read_bytes().replace(
                b"/ref/", b"/rec/"), name
    print(f"killed after {len(done)} class files; the rerun kept {resumed.group(1)}")
