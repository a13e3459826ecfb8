"""Bad inputs through the real command line: one line naming the culprit, nothing left behind.

Every row runs `python -m ctx_tf.<command>` in a fresh process and asserts the exit code 2,
that the last stderr line is `ctx_tf.<command>: error: ...` naming the culprit, that no
traceback is shown, and that the working folder holds exactly what it held before (no
half-made run, source or result folder). Good runs assert that stderr carries no foreign log
line (TensorFlow's C++ logs, gin's, deprecation warnings). Each process imports TensorFlow
(5-15 s here), so the slowest rows are marked `slow`.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ctx_tf.data.writing import splits
from ctx_tf.data.writing.arrays import write_source_from_arrays
from ctx_tf.data.writing.folder import write_source_from_folder
from tests.conftest import REPO_ROOT

DEMO_GIN = str(REPO_ROOT / "gin" / "demo.gin")
FOREIGN_LOG_LINE = re.compile(
    r"^([IWEF]\d{4} |WARNING: All log messages|WARNING:tensorflow|.*Path not found"
    r"|.*is deprecated|.*Warning: )", re.MULTILINE)


def snapshot(root):
    return sorted(str(p.relative_to(root)) for p in pathlib.Path(root).rglob("*"))


def run(command, args, cwd, cache):
    env = {k: v for k, v in os.environ.items()
           if k not in ("CTX_TF_VERBOSE", "TF_CPP_MIN_LOG_LEVEL")}
    env["CTX_TF_CACHE"] = str(cache)
    return subprocess.run([sys.executable, "-m", f"ctx_tf.{command}", *args],
                          capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


@pytest.fixture
def world(tmp_path):
    """A working folder with a tiny source, a folder of images and a plain file."""
    root = tmp_path / "world"
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (6, 12, 12, 3), dtype=np.uint8) for _ in range(14)]
    write_source_from_arrays(root / "records", "tiny", arrays, splits=(6, 4, 4))
    broken = root / "records" / "broken"
    broken.mkdir()
    (broken / "dataset_spec.json").write_text('{"name": "broken", "classes_per_split": ')
    (root / "records" / "no_spec").mkdir()
    images = root / "images"
    for c in range(3):
        (images / f"class_{c}").mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(
                images / f"class_{c}" / f"{i}.png")
    (images / "class_0" / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    (images / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (images / "class_1" / "labels.csv").write_text("file,label\n0.png,1\n")
    # Damaged copies of the tiny source: an empty class file, and one cut short (an
    # interrupted copy).
    for name, cut in (("empty_file", 0), ("truncated_file", 0.5)):
        # Ten TEST classes (ids 4-13): enough for the official episodes' 5 ways at least.
        write_source_from_arrays(root / "records", name, arrays, splits=(2, 2, 10))
        damaged = root / "records" / name / "12.tfrecords"
        data = damaged.read_bytes()
        damaged.write_bytes(data[:int(len(data) * cut)])
    (root / "a_file").write_text("not a folder\n")
    (root / "train_dir").mkdir()  # a training folder without a run manifest
    (root / "cache").mkdir()
    return root


# command, arguments ({w}: the world folder), what the error line must contain
CASES = {
    "train: missing gin file": (
        "train", ["--gin_config=missing.gin"], "gin config file missing.gin not found"),
    "train: misspelled binding": (
        "train", [f"--gin_config={DEMO_GIN}", "--gin_bindings=Trainer.num_updatez = 5"],
        "gin configuration: Configurable 'Trainer' doesn't have a parameter named "
        "'num_updatez', in the --gin_bindings"),
    "train: negative update count": (
        "train", [f"--gin_config={DEMO_GIN}", "--gin_bindings=Trainer.num_updates = -5"],
        "Trainer.num_updates must be a positive integer, got -5"),
    "train: checkpoint folder is a file": (
        "train", [f"--gin_config={DEMO_GIN}", "--records_root_dir={w}/records",
                  "--gin_bindings=benchmark.train_datasets = 'tiny'",
                  "--gin_bindings=benchmark.eval_datasets = 'tiny'",
                  "--train_checkpoint_dir={w}/a_file"],
        "--train_checkpoint_dir={w}/a_file is a file, not a folder"),
    "train: malformed spec": (
        "train", [f"--gin_config={DEMO_GIN}", "--records_root_dir={w}/records",
                  "--gin_bindings=benchmark.train_datasets = 'broken'",
                  "--gin_bindings=benchmark.eval_datasets = 'tiny'"],
        "{w}/records/broken/dataset_spec.json"),
    "evaluate: --num_episodes=0": (
        "evaluate", ["--records_root_dir={w}/records", "--datasets=tiny", "--checkpoint=x",
                     "--output_dir={w}/out", "--num_episodes=0"],
        "--num_episodes must be >= 1, got 0"),
    "evaluate: output folder is a file": (
        "evaluate", ["--records_root_dir={w}/records", "--datasets=tiny", "--checkpoint=x",
                     "--output_dir={w}/a_file"],
        "--output_dir={w}/a_file is a file, not a folder"),
    "evaluate: training folder without a manifest": (
        "evaluate", ["--checkpoint=best", "--train_checkpoint_dir={w}/train_dir"],
        "--records_root_dir is required (or --train_checkpoint_dir of a run with a "
        "run_manifest.json)"),
    "writer: --check of a missing path": (
        "data.writer", ["--check={w}/nowhere"], "{w}/nowhere: no such source folder"),
    "writer: --check of a folder without a spec": (
        "data.writer", ["--check={w}/records/no_spec"], "{w}/records/no_spec"),
    "writer: --check of a malformed spec": (
        "data.writer", ["--check={w}/records/broken"], "{w}/records/broken/dataset_spec.json"),
    "writer: output root is a file": (
        "data.writer", ["--images_root={w}/images", "--records_root={w}/a_file", "--name=x"],
        "--records_root_dir={w}/a_file is a file, not a folder"),
    "writer: corrupt JPEG with --strict": (
        "data.writer", ["--images_root={w}/images", "--records_root_dir={w}/out", "--name=x",
                        "--strict"],
        "bad.jpg"),
    "evaluate: empty class file": (
        "evaluate", ["--floor_only", "--records_root_dir={w}/records", "--datasets=empty_file",
                     "--output_dir={w}/out", "--num_episodes=3"],
        "{w}/records/empty_file/12.tfrecords"),
    "evaluate: truncated class file": (
        "evaluate", ["--floor_only", "--records_root_dir={w}/records",
                     "--datasets=truncated_file", "--output_dir={w}/out", "--num_episodes=3"],
        "{w}/records/truncated_file/12.tfrecords"),
    "sources: unknown source name": (
        "data.sources", ["--source=nope", "--raw_dir={w}/images", "--records_root_dir={w}/out"],
        "nope"),
    "runs: output folder is a file": (
        "evaluation.runs", ["--run=A={w}/train_dir", "--output_dir={w}/a_file"],
        "--output_dir={w}/a_file is a file, not a folder"),
    "simclr_preview: unknown dataset": (
        "data.simclr_preview", ["--records_root_dir={w}/records", "--dataset=nope"], "nope"),
    "evaluate: md_v2 for a run that trained for md_v1": (
        "evaluate", [f"--gin_config={REPO_ROOT / 'gin' / 'ctx.gin'}", "--benchmark=md_v2",
                     "--records_root_dir={w}/records", "--checkpoint=x",
                     "--output_dir={w}/out"],
        "--benchmark=md_v2, but the gin configuration (benchmark.train_datasets = "
        "'ilsvrc_2012') trained for md_v1"),
    "evaluate: md_v2 test sources missing from the records root": (
        "evaluate", ["--floor_only", "--benchmark=md_v2", "--records_root_dir={w}/records",
                     "--output_dir={w}/out"],
        "unknown sources 'omniglot', 'aircraft', 'cu_birds', 'dtd', 'quickdraw', 'fungi', "
        "'traffic_sign', 'mscoco': no {w}/records/<name>/dataset_spec.json"),
    "sources: --raw_dir file that is not the ILSVRC train tar": (
        "data.sources", ["--source=ilsvrc_2012", "--raw_dir={w}/a_file",
                         "--records_root_dir={w}/out"],
        "{w}/a_file: not an uncompressed tar archive"),
}
# A representative set runs unmarked (about 20 s a process on a loaded machine).
FAST = {"train: negative update count", "evaluate: output folder is a file",
        "evaluate: training folder without a manifest", "writer: --check of a missing path",
        "evaluate: truncated class file"}


@pytest.mark.parametrize("case", [
    pytest.param(case, marks=[] if case in FAST else [pytest.mark.slow])
    for case in CASES])
def test_a_bad_input_gets_one_line_and_leaves_nothing(world, case):
    command, args, culprit = CASES[case]
    before = snapshot(world)
    proc = run(command, [a.replace("{w}", str(world)) for a in args], world, world / "cache")
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert lines and lines[-1].startswith(f"ctx_tf.{command}: error: "), proc.stderr[-3000:]
    assert culprit.replace("{w}", str(world)) in lines[-1]
    assert "Traceback" not in proc.stderr
    assert FOREIGN_LOG_LINE.search(proc.stderr) is None, proc.stderr
    assert snapshot(world) == before


def test_a_good_check_prints_only_its_own_lines(world):
    proc = run("data.writer", [f"--check={world}/records/tiny"], world, world / "cache")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert ": OK; 14 classes" in proc.stdout


@pytest.mark.slow
def test_good_runs_of_the_data_commands_print_only_their_own_lines(world):
    proc = run("data.simclr_preview", [f"--records_root_dir={world}/records", "--dataset=tiny",
                                       "--image_size=12", f"--out={world}/grid.png"],
               world, world / "cache")
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr[-3000:]
    assert (world / "grid.png").exists()


@pytest.mark.slow
def test_a_source_of_test_classes_only(world):
    """Your own images as a held-out test domain: every class a TEST class."""
    for path in ("class_0/bad.jpg", "class_1/labels.csv"):  # the images alone
        os.remove(world / "images" / path)
    proc = run("data.writer", [f"--images_root={world}/images", f"--records_root={world}/rec",
                               "--name=mine", "--valid_fraction=0", "--test_fraction=1"],
               world, world / "cache")
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr[-3000:]
    spec = json.loads((world / "rec" / "mine" / "dataset_spec.json").read_text())
    assert spec["classes_per_split"] == {"TRAIN": 0, "VALID": 0, "TEST": 3}


def test_a_splits_file_can_make_every_class_a_test_class(world):
    for path in ("class_0/bad.jpg", "class_1/labels.csv"):
        os.remove(world / "images" / path)
    splits_file = world / "splits.json"
    splits_file.write_text(json.dumps(dict(train=[], valid=[],
                                           test=["class_0", "class_1", "class_2"])))
    write_source_from_folder(world / "images", world / "rec", "mine",
                             splits=splits.load_splits_file(str(splits_file)))
    spec = json.loads((world / "rec" / "mine" / "dataset_spec.json").read_text())
    assert spec["classes_per_split"] == {"TRAIN": 0, "VALID": 0, "TEST": 3}


def test_verbose_shows_the_traceback_and_tensorflows_start_up_logs(world):
    proc = run("data.writer", [f"--check={world}/nowhere", "--verbose"], world, world / "cache")
    assert proc.returncode == 2
    assert "Traceback (most recent call last)" in proc.stderr
    assert re.search(r"^[IWEF]\d{4} ", proc.stderr, re.MULTILINE), proc.stderr  # C++ logs
    assert proc.stderr.splitlines()[-1].startswith("ctx_tf.data.writer: error: ")


@pytest.mark.slow
def test_help_shows_no_start_up_logs(world):
    proc = run("data.writer", ["--help"], world, world / "cache")
    assert "--images_root" in proc.stdout
    assert FOREIGN_LOG_LINE.search(proc.stderr) is None, proc.stderr
