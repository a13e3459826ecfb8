"""Learners: loss/accuracy/logit composition, gin construction, checkpoints, overfitting."""


import gin
import numpy as np
import pytest
import tensorflow as tf

from ctx_tf import learners
from ctx_tf.data.episode import Episode
from ctx_tf.keras import keras
from ctx_tf.models import backbones


def make_episode(rng, ways=3, shots=(2, 1, 3), queries=2, size=28):
    support_labels = rng.permutation(np.repeat(np.arange(ways), shots)).astype(np.int32)
    query_labels = rng.permutation(np.repeat(np.arange(ways), queries)).astype(np.int32)

    def images(n):
        return tf.constant(rng.uniform(-1, 1, (n, size, size, 3)), tf.float32)

    return Episode(
        support_images=images(len(support_labels)),
        support_labels=tf.constant(support_labels),
        support_class_ids=tf.constant(support_labels.astype(np.int64) + 100),
        query_images=images(len(query_labels)),
        query_labels=tf.constant(query_labels),
        query_class_ids=tf.constant(query_labels.astype(np.int64) + 100),
    )


def numpy_cross_entropy(logits, labels):
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(labels)), labels].mean()


@pytest.mark.compat
def test_protonet_logits_loss_accuracy_match_numpy(rng_seed):
    rng = np.random.default_rng(rng_seed)
    episode = make_episode(rng)
    learner = learners.PrototypicalNetworkLearner(
        embedding_fn=lambda **kw: backbones.four_layer_convnet(weight_decay=0.01, **kw))
    out = learner(episode, training=True)
    # Embeddings by the same backbone, support moments reused by the queries.
    support, moments = learner.backbone(episode.support_images, training=True)
    query, _ = learner.backbone(episode.query_images, training=True, moments=moments)
    support, query = support.numpy().astype(np.float64), query.numpy().astype(np.float64)
    labels = episode.support_labels.numpy()
    prototypes = np.stack([support[labels == c].mean(axis=0) for c in range(3)])
    logits = -((query[:, None, :] - prototypes[None]) ** 2).sum(axis=-1)
    scale = np.abs(logits).max()
    np.testing.assert_allclose(out.logits.numpy(), logits, atol=2e-5 * scale, rtol=0)
    q_labels = episode.query_labels.numpy()
    kernels = [v for k, v in learner.official_variable_names().items() if k.endswith("/weight")]
    l2 = 0.01 * sum(np.sum(v.numpy().astype(np.float64) ** 2) for v in kernels)
    np.testing.assert_allclose(float(out.loss), numpy_cross_entropy(logits, q_labels) + l2, rtol=1e-4)
    np.testing.assert_allclose(float(out.accuracy), np.mean(logits.argmax(axis=1) == q_labels))


def test_ctx_learner_composes_backbone_and_head(rng_seed):
    rng = np.random.default_rng(rng_seed)
    episode = make_episode(rng)
    learner = learners.CrossTransformerLearner(
        embedding_fn=backbones.four_layer_convnet, query_dim=8, val_dim=4, tformer_weight_decay=0.1)
    out = learner(episode, training=False)  # builds; eval mode uses the (initial) EMA
    assert out.logits.shape == (6, 3)
    support, moments = learner.backbone(episode.support_images, training=False)
    query, _ = learner.backbone(episode.query_images, training=False, moments=moments)
    logits = learner.head(support, episode.support_labels, query).numpy()
    np.testing.assert_allclose(out.logits.numpy(), logits, rtol=1e-6, atol=1e-6)
    wk, wv = learner.head.get_weights()
    l2 = 0.1 * (np.sum(wk.astype(np.float64) ** 2) + np.sum(wv.astype(np.float64) ** 2))
    ce = numpy_cross_entropy(logits, episode.query_labels.numpy())
    np.testing.assert_allclose(float(out.loss), ce + l2, rtol=1e-4)
    names = learner.official_variable_names()
    assert "tformer_keys/weight" in names and "four_layer_convnet/layer_0/weight" in names
    # Evaluation leaves every variable (EMA included) unchanged; training moves the EMA.
    before = [v.numpy().copy() for v in learner.variables]
    learner(episode, training=False)
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, learner.variables))
    learner(episode, training=True)
    ema = names["four_layer_convnet/layer_0/batch_norm/mean_ema"].numpy()
    assert np.any(ema != 0)


def test_gin_bindings_build_learner_and_checkpoint_roundtrip(rng_seed, tmp_path):
    rng = np.random.default_rng(rng_seed)
    episode = make_episode(rng, size=32)
    gin.clear_config()
    try:
        gin.parse_config([
            "Learner.embedding_fn = @four_layer_convnet",
            "four_layer_convnet.weight_decay = 0.25",
            "CrossTransformerLearner.query_dim = 16",
            "CrossTransformerLearner.val_dim = 12",
            "CrossTransformerLearner.tformer_weight_decay = 0.5",
            "bn.ema_epsilon = 0.8",
        ])
        learner = learners.CrossTransformerLearner()
    finally:
        gin.clear_config()
    assert isinstance(learner.backbone, backbones.FourLayerConvNet)
    assert learner.backbone.weight_decay == 0.25 and learner.head.tformer_weight_decay == 0.5
    out = learner(episode, training=True)
    assert learner.head.get_weights()[0].shape == (1, 1, 64, 16)
    assert learner.head.get_weights()[1].shape == (1, 1, 64, 12)
    assert learner.backbone.layers_[0].bn.ema_epsilon == 0.8
    assert len(learner.trainable_variables) == 4 * 3 + 2
    path = tf.train.Checkpoint(learner=learner).save(str(tmp_path / "ckpt"))
    other = learners.CrossTransformerLearner(embedding_fn=backbones.four_layer_convnet, query_dim=16, val_dim=12)
    other(episode, training=False)
    tf.train.Checkpoint(learner=other).restore(path).assert_consumed()
    for a, b in zip(learner.variables, other.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_allclose(
        learner(episode, training=False).logits.numpy(), other(episode, training=False).logits.numpy())
    assert np.isfinite(float(out.loss))


def test_ctx_learner_overfits_one_episode(rng_seed):
    """Plain Adam on one fixed 28 px episode: the loss falls 10x within a few hundred steps."""
    rng = np.random.default_rng(rng_seed)
    tf.random.set_seed(rng_seed % (2**31))
    episode = make_episode(rng, shots=(2, 2, 2))
    learner = learners.CrossTransformerLearner(embedding_fn=backbones.four_layer_convnet, query_dim=32, val_dim=32)
    optimizer = keras.optimizers.Adam(1e-3)

    @tf.function
    def train_steps(episode, n):
        # Several updates per call keeps Python overhead out of the loop.
        loss = tf.constant(0.0)
        for _ in tf.range(n):
            with tf.GradientTape() as tape:
                loss = learner(episode, training=True).loss
            grads = tape.gradient(loss, learner.trainable_variables)
            optimizer.apply_gradients(zip(grads, learner.trainable_variables))
        return loss

    first = float(learner(episode, training=True).loss)
    optimizer.build(learner.trainable_variables)
    loss = first
    for _ in range(30):
        loss = float(train_steps(episode, tf.constant(10)))
        if loss < first / 10:
            break
    assert loss < first / 10, (first, loss)
