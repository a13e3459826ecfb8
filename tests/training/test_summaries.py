"""TensorBoard summaries: tf.summary scalars and images, read back; the attention image only
for learners that have attention."""

import numpy as np
import tensorflow as tf

from ctx_tf.evaluation import curves
from ctx_tf.evaluation import plot
from ctx_tf.learners import PrototypicalNetworkLearner
from ctx_tf.models.backbones import FourLayerConvNet
from ctx_tf.training import summaries
from tests.training.helpers import make_trainer


def _values(directory):
    """{tag: [(step, plugin name, tensor)]} of every summary value under `directory`."""
    found = {}
    for path in curves.event_files(directory):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                found.setdefault(value.tag, []).append(
                    (event.step, value.metadata.plugin_data.plugin_name,
                     tf.make_ndarray(value.tensor)))
    return found


def test_scalar_and_png_image_read_back(tmp_path):
    figure = plot.new_figure((320, 200))
    figure.add_subplot().plot([0, 1], [1, 0])
    png = plot.figure_png(figure)
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default(step=5):
        summaries.scalar("valid_acc/mean", 0.75)
        summaries.png_image("valid/attention", png)
    writer.flush()
    values = _values(tmp_path)
    [(step, plugin, tensor)] = values["valid_acc/mean"]
    assert (step, plugin, tensor.dtype, float(tensor)) == (5, "scalars", np.float32, 0.75)
    assert curves.read_scalars(tmp_path)["valid_acc/mean"][1].tolist() == [0.75]
    [(step, plugin, tensor)] = values["valid/attention"]
    assert (step, plugin) == (5, "images")
    assert (int(tensor[0]), int(tensor[1])) == (320, 200)
    np.testing.assert_array_equal(tf.io.decode_png(tensor[2]).numpy(),
                                  tf.io.decode_png(png, channels=3).numpy())


def _protonet():
    def embedding_fn(keep_spatial_dims=False):
        return FourLayerConvNet(keep_spatial_dims=keep_spatial_dims, depth=8)

    return PrototypicalNetworkLearner(embedding_fn=embedding_fn)


def test_a_learner_without_attention_logs_no_attention_image(tmp_path):
    make_trainer(tmp_path, train_learner_class=_protonet, num_updates=1, validate_every=1,
                 checkpoint_every=1, log_every=1, num_eval_episodes=1).train()
    values = _values(tmp_path / "summaries")
    assert [step for step, _, _ in values["valid_acc/mean"]] == [0, 1]
    assert "valid/attention" not in values
