"""python -m ctx_tf.visualize: attention PNGs from our checkpoints and official ones."""

import os
import subprocess
import sys

import gin
import numpy as np
import pytest
from PIL import Image

from ctx_tf import checkpoints
from ctx_tf import cli
from ctx_tf import learners
from ctx_tf import official_checkpoint
from ctx_tf import visualize
from ctx_tf.data import config as config_lib
from ctx_tf.errors import UserError
from ctx_tf.evaluation import attention_figure
from tests.data.helpers import write_tiny_source

TINY_GIN = """
Trainer.train_learner_class = @CrossTransformerLearner
Trainer.eval_learner_class = @CrossTransformerLearner
benchmark.train_datasets = 'tiny'
benchmark.eval_datasets = 'tiny'
Learner.embedding_fn = @four_layer_convnet
CrossTransformerLearner.query_dim = 8
CrossTransformerLearner.val_dim = 8
DataConfig.image_height = 32
DataConfig.shuffle_buffer_size = 20
EpisodeDescriptionConfig.min_ways = 3
EpisodeDescriptionConfig.max_ways_upper_bound = 4
EpisodeDescriptionConfig.max_num_query = 2
EpisodeDescriptionConfig.max_support_set_size = 12
"""


def _train_dir(tmp_path, gin_text):
    """A training directory as training leaves it: best/ckpt-1 and operative_config.gin."""
    gin_file = tmp_path / "model.gin"
    gin_file.write_text(gin_text)
    cli.parse_gin([str(gin_file)], [])
    learner = learners.build_learner(training=False,
                                     image_size=config_lib.DataConfig().image_height)
    train_dir = tmp_path / "checkpoints"
    prefix = checkpoints.make_checkpoint(learner).save(str(train_dir / "best" / "ckpt"))
    # The run's configuration as training records it (a gin file beside the checkpoints).
    (train_dir / checkpoints.OPERATIVE_CONFIG).write_text(gin_text)
    gin.clear_config()
    return prefix, learner


def _sizes(paths):
    sizes = []
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG"
            sizes.append(image.size)
    return sizes


def test_pngs_from_a_checkpoint_with_no_other_flag_than_the_records(tmp_path, clean_gin):
    write_tiny_source(tmp_path / "records", "tiny", size=32, splits=(6, 5, 6))
    records = str(tmp_path / "records")
    prefix, _ = _train_dir(tmp_path, TINY_GIN)
    lines = []
    paths = visualize.run_visualize(prefix, records_root_dir=records, seed=3, num_queries=3,
                                    max_shots=2, log=lines.append)
    assert [os.path.basename(p) for p in paths] == ["query_0.png", "query_1.png", "query_2.png"]
    assert all(os.path.dirname(p) == str(tmp_path / "checkpoints" / "best" / "attention")
               for p in paths)
    # Four-layer convnet at 32 px: a 2 x 2 feature map, all 4 positions marked; one class
    # block when right, two when wrong; 2 shots shown per class.
    allowed = {attention_figure.figure_size(1 + blocks * 4, 3) for blocks in (1, 2)}
    assert set(_sizes(paths)) <= allowed
    assert any(str(tmp_path / "checkpoints" / "operative_config.gin") in line for line in lines)
    assert sum(("correct" in line) or ("wrong" in line) for line in lines) == 3


@pytest.mark.slow
def test_pngs_from_an_official_checkpoint(tmp_path, clean_gin):
    write_tiny_source(tmp_path / "records", "tiny", size=32, splits=(6, 5, 6))
    records = str(tmp_path / "records")
    official_gin = TINY_GIN.replace("@four_layer_convnet", "@resnet34") + \
        "resnet34.max_stride = 16\n"
    gin_file = tmp_path / "official.gin"
    gin_file.write_text(official_gin)
    cli.parse_gin([str(gin_file)], [])
    learner = learners.build_learner(training=False, image_size=32)
    prefix = official_checkpoint.save_official_checkpoint(
        learner, str(tmp_path / "tf1" / "model.ckpt-7"), global_step=7)
    gin.clear_config()
    assert checkpoints.official_checkpoint.is_official_checkpoint(prefix)
    lines = []
    paths = visualize.run_visualize(prefix, gin_config=[str(gin_file)], records_root_dir=records,
                                    dataset="tiny", num_queries=1, max_shots=2,
                                    output_dir=str(tmp_path / "out"), log=lines.append)
    assert len(paths) == 1 and _sizes(paths)[0] in {
        attention_figure.figure_size(1 + blocks * 4, 3) for blocks in (1, 2)}
    assert any(line.startswith("official TF1 checkpoint") for line in lines), lines


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "ctx_tf.visualize", *args],
                          capture_output=True, text=True, timeout=300)


def test_a_missing_checkpoint_is_a_user_error_naming_it(tmp_path, clean_gin):
    with pytest.raises(UserError, match="nope/ckpt-1"):
        visualize.run_visualize(f"{tmp_path}/nope/ckpt-1")


def test_cli_user_errors_are_one_line(tmp_path):
    # An official-style checkpoint has no operative config beside it: --gin_config is named.
    prefix = official_checkpoint.write_name_based_checkpoint(
        str(tmp_path / "tf1" / "model.ckpt-1"), {"global_step": np.int64(1)})
    no_config = subprocess.run([sys.executable, "-m", "ctx_tf.visualize", f"--checkpoint={prefix}"],
                               capture_output=True, text=True, timeout=300)
    assert no_config.returncode == 2
    [line] = no_config.stderr.strip().splitlines()
    assert line.startswith("ctx_tf.visualize: error: --gin_config is required"), line
    assert not (tmp_path / "tf1" / "attention").exists()
