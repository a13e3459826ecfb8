"""Official (TF1 name-based) CTX checkpoints: one written by the official code, round trip,
ignored optimizer state, errors."""

import functools
import json

import numpy as np
import pytest
import tensorflow as tf

from ctx_tf import checkpoints
from ctx_tf import official_checkpoint as oc
from ctx_tf.data.episode import Episode
from ctx_tf.learners import CrossTransformerLearner
from ctx_tf.models import backbones
from ctx_tf.learners import build_learner_variables
from tests.conftest import REPO_ROOT

IMAGE_SIZE = 32
STAGES = {2: (3, 64), 3: (4, 128), 4: (6, 256), 5: (3, 512)}
# Written by the unmodified official code (tools/make_official_checkpoint.py; its provenance
# is provenance.json there).
OFFICIAL_FIXTURE = REPO_ROOT / "tests" / "fixtures" / "official_ctx_checkpoint"
# float32 rounding (unit roundoff 2**-24 = 6e-8) of logits summed over 9 positions x 128
# channels of features from four 3x3 convolutions (576-term sums) and batch norms, computed in
# another order (ctx_tf pools before its batch norm and has its own attention kernel): about
# sqrt(n) roundoffs per reduction, a few hundred in all. 1e-5 of the largest logit (170
# roundoffs) bounds that; the spread of the logits over the classes of a query is 1e-2 to 1.
LOGIT_RTOL = 1e-5


def make_learner():
    embedding_fn = functools.partial(backbones.resnet34, max_stride=16, deeplab_alignment=False)
    learner = CrossTransformerLearner(embedding_fn=embedding_fn, query_dim=128, val_dim=128)
    return build_learner_variables(learner, IMAGE_SIZE)


def expected_official_shapes():
    """The 188 official names and shapes, written out from the facts of the official layout."""
    shapes = {}

    def conv(scope, kernel):
        shapes[f"{scope}/weight"] = kernel
        for vector in ("offset", "scale", "mean_ema", "var_ema"):
            shapes[f"{scope}/batch_norm/{vector}"] = [1, 1, 1, kernel[-1]]

    conv("resnet34/conv1", [7, 7, 3, 64])
    in_channels = 64
    for stage, (blocks, channels) in STAGES.items():
        for block in range(blocks):
            scope = f"resnet34/conv{stage}_x/bottleneck_{block}"
            conv(f"{scope}/conv1", [3, 3, in_channels, channels])
            conv(f"{scope}/conv2", [3, 3, channels, channels])
            if block == 0:
                conv(f"{scope}/identity/projection_conv", [1, 1, in_channels, channels])
            in_channels = channels
    shapes["tformer_keys/weight"] = [1, 1, 512, 128]
    shapes["tformer_values/weight"] = [1, 1, 512, 128]
    shapes["global_step"] = []
    return shapes


def random_episode(seed):
    rng = np.random.default_rng(seed)
    images = lambda n: tf.constant(rng.normal(size=[n, IMAGE_SIZE, IMAGE_SIZE, 3]), tf.float32)
    return Episode(
        support_images=images(2), support_labels=tf.constant([0, 1], tf.int32),
        support_class_ids=tf.constant([3, 7], tf.int64),
        query_images=images(2), query_labels=tf.constant([1, 0], tf.int32),
        query_class_ids=tf.constant([7, 3], tf.int64))


def _official_fixture_episode():
    data = np.load(OFFICIAL_FIXTURE / "episode.npz")
    scaled = lambda pixels: tf.constant(pixels.astype(np.float32) / 127.5 - 1.0)  # as decoded
    return Episode(
        support_images=scaled(data["support_pixels"]),
        support_labels=tf.constant(data["support_labels"]),
        support_class_ids=tf.constant(data["support_labels"].astype(np.int64) + 10),
        query_images=scaled(data["query_pixels"]),
        query_labels=tf.constant(data["query_labels"]),
        query_class_ids=tf.constant(data["query_labels"].astype(np.int64) + 10))


@pytest.mark.compat
def test_a_checkpoint_of_the_official_code_gives_the_official_logits():
    provenance = json.loads((OFFICIAL_FIXTURE / "provenance.json").read_text())
    assert provenance["official_code"]["commit"] == "167609505780a3dc604f50206253d65839093be9"
    assert provenance["learner"]["embedding_fn"] == "four_layer_convnet"
    prefix = str(OFFICIAL_FIXTURE / provenance["checkpoint"])
    learner = CrossTransformerLearner(embedding_fn=backbones.four_layer_convnet,
                                      query_dim=provenance["learner"]["query_dim"],
                                      val_dim=provenance["learner"]["val_dim"])
    build_learner_variables(learner, provenance["image_size"])
    assert oc.is_official_checkpoint(prefix)
    # The way the commands load a checkpoint of either layout.
    assert checkpoints.load_learner_weights(learner, prefix).startswith(
        "official TF1 checkpoint: loaded 22 variables")
    report = oc.load_official_checkpoint(learner, prefix)
    assert report.ok and report.ignored == [] and report.global_step == 5
    assert sorted(report.loaded) == sorted(n for n in provenance["variables"]
                                           if n != "global_step")
    official = np.load(OFFICIAL_FIXTURE / "logits.npz")
    episode = _official_fixture_episode()
    # Evaluation first: a training-mode pass updates the moving averages.
    for mode, training in (("eval", False), ("train", True)):
        ours = learner(episode, training=training).logits.numpy()
        assert ours.shape == official[mode].shape == (5, 3)
        np.testing.assert_allclose(ours, official[mode], rtol=0,
                                   atol=LOGIT_RTOL * np.abs(official[mode]).max())
        np.testing.assert_array_equal(ours.argmax(1), official[mode].argmax(1))
    # The two batch-norm modes give different logits, so each comparison checks its own mode.
    assert np.abs(official["eval"] - official["train"]).min() > 0.1


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A learner with random kernels, BN affine parameters and EMAs, saved officially."""
    learner = make_learner()
    rng = np.random.default_rng(1234)
    for name, variable in oc.official_name_map(learner).items():
        shape = variable.shape
        if name.endswith("/var_ema"):
            value = rng.uniform(0.5, 2.0, size=shape)
        elif name.endswith(("/mean_ema", "/offset")):
            value = rng.normal(scale=0.1, size=shape)
        elif name.endswith("/scale"):
            value = rng.uniform(0.8, 1.2, size=shape)
        else:
            continue  # kernels keep their random initialization
        variable.assign(value.astype(np.float32))
    prefix = oc.save_official_checkpoint(
        learner, str(tmp_path_factory.mktemp("official") / "model.ckpt"), global_step=4321)
    return learner, prefix


def read_all(prefix):
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def test_round_trip(saved):
    learner, prefix = saved
    assert oc.is_official_checkpoint(prefix)
    shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    expected = expected_official_shapes()
    assert len(expected) == 188
    assert {k: list(v) for k, v in shapes.items()} == expected
    dtypes = tf.train.load_checkpoint(prefix).get_variable_to_dtype_map()
    assert dtypes["global_step"] == tf.int64
    kernels = [k for k in shapes if k.endswith("/weight") and k.startswith("resnet34/")]
    vectors = [k for k in shapes if "/batch_norm/" in k]
    assert (len(kernels), len(vectors)) == (37, 148)

    fresh = make_learner()
    report = oc.load_official_checkpoint(fresh, prefix)
    assert report.ok and report.global_step == 4321 and report.ignored == []
    assert len(report.loaded) == 187
    episode = random_episode(7)
    # Evaluation first: a training-mode pass updates the EMAs (identically in both learners).
    for training in (False, True):
        ours = learner(episode, training=training).logits.numpy()
        theirs = fresh(episode, training=training).logits.numpy()
        np.testing.assert_array_equal(ours, theirs)
    # The BN EMAs were non-trivial, so evaluation logits differ from training logits.
    assert not np.allclose(learner(episode, training=False).logits.numpy(),
                           learner(episode, training=True).logits.numpy())


def test_optimizer_and_replica_variables_are_ignored(saved, tmp_path):
    learner, prefix = saved
    tensors = read_all(prefix)
    tensors["resnet34/conv1/weight/Adam"] = np.zeros_like(tensors["resnet34/conv1/weight"])
    tensors["tformer_keys/weight/Adam_1"] = np.ones_like(tensors["tformer_keys/weight"])
    tensors["beta1_power"] = np.float32(0.9)
    tensors["beta2_power"] = np.float32(0.999)
    tensors["replica_1/resnet34/conv1/batch_norm/mean_ema"] = np.zeros([1, 1, 1, 64], np.float32)
    extra = oc.write_name_based_checkpoint(str(tmp_path / "train.ckpt"), tensors)
    fresh = make_learner()
    report = oc.load_official_checkpoint(fresh, extra)
    assert report.ok and report.global_step == 4321 and len(report.loaded) == 187
    assert report.ignored == sorted([
        "resnet34/conv1/weight/Adam", "tformer_keys/weight/Adam_1", "beta1_power",
        "beta2_power", "replica_1/resnet34/conv1/batch_norm/mean_ema"])
    assert "ignored 5" in report.summary()
    np.testing.assert_array_equal(fresh.head.key_kernel.numpy(), learner.head.key_kernel.numpy())


def test_missing_unexpected_and_misshaped_variables(saved, tmp_path):
    _, prefix = saved
    tensors = read_all(prefix)
    del tensors["resnet34/conv3_x/bottleneck_2/conv1/batch_norm/var_ema"]
    tensors["tformer_values/weight"] = np.zeros([1, 1, 512, 64], np.float32)
    tensors["resnet34/conv2_x/bottleneck_0/conv2/batch_norm/scale"] = np.ones([1, 1, 1, 32],
                                                                                np.float32)
    tensors["some_other_head/weight"] = np.zeros([3], np.float32)
    bad = oc.write_name_based_checkpoint(str(tmp_path / "bad.ckpt"), tensors)
    fresh = make_learner()
    before = fresh.head.value_kernel.numpy()
    with pytest.raises(oc.OfficialCheckpointError) as error:
        oc.load_official_checkpoint(fresh, bad)
    message = str(error.value)
    assert "missing (1): resnet34/conv3_x/bottleneck_2/conv1/batch_norm/var_ema" in message
    assert "unexpected (1): some_other_head/weight" in message
    assert ("tformer_values/weight: checkpoint [1, 1, 512, 64], learner [1, 1, 512, 128]"
            in message)
    assert ("resnet34/conv2_x/bottleneck_0/conv2/batch_norm/scale: checkpoint [1, 1, 1, 32], "
            "learner [1, 1, 1, 64]" in message)
    # Strict loading is all or nothing.
    np.testing.assert_array_equal(fresh.head.value_kernel.numpy(), before)

    report = oc.load_official_checkpoint(fresh, bad, strict=False)
    assert not report.ok and len(report.loaded) == 187 - 3
    assert report.missing == ["resnet34/conv3_x/bottleneck_2/conv1/batch_norm/var_ema"]
    assert [m[0] for m in report.shape_mismatches] == [
        "resnet34/conv2_x/bottleneck_0/conv2/batch_norm/scale", "tformer_values/weight"]


@pytest.mark.compat
def test_format_detection(tmp_path):
    official = oc.write_name_based_checkpoint(
        str(tmp_path / "official" / "model.ckpt"),
        {"resnet34/conv1/weight": np.zeros([7, 7, 3, 64], np.float32),
         "global_step": np.int64(3)})
    assert oc.is_official_checkpoint(official)
    assert oc.is_official_checkpoint(str(tmp_path / "official"))  # directory: latest
    ours = tf.train.Checkpoint(v=tf.Variable([1.0])).write(str(tmp_path / "ours" / "ckpt"))
    assert not oc.is_official_checkpoint(ours)
    assert not oc.is_official_checkpoint(str(tmp_path / "nothing_here"))
    assert oc.is_optimizer_state("a/weight/Adam_1") and oc.is_optimizer_state("beta2_power")
    assert not oc.is_optimizer_state("resnet34/conv1/batch_norm/scale")
