"""The predict function of validation, the final test and `ctx_tf.evaluate` is traced once
per run, whatever the support and query sizes of the episodes (every episode has its own)."""

import numpy as np
import tensorflow as tf

from ctx_tf.data.dataset_spec.base import Split
from ctx_tf.evaluation import protocol
from ctx_tf.learners import build_learner_variables
from tests.training.helpers import make_episode, make_trainer, toy_learner

# (way, shot, query): every episode a new support and query size.
SHAPES = [(3, 2, 2), (5, 1, 3), (2, 4, 1), (4, 3, 2), (3, 1, 5)]


def count_traces(learner):
    """Counts the learner's forward passes built into graphs (a Python side effect runs once
    per trace, never when a traced graph runs)."""
    traces = []
    episode_logits = learner.episode_logits

    def counted(*args, **kwargs):
        traces.append(1)
        return episode_logits(*args, **kwargs)

    learner.episode_logits = counted
    return traces


def shaped_episodes(seed):
    rng = np.random.RandomState(seed % (2 ** 31))
    return [make_episode(rng, way=w, shot=s, query=q) for w, s, q in SHAPES]


def test_validation_traces_the_predict_function_once(tmp_path):
    trainer = make_trainer(tmp_path, num_eval_episodes=len(SHAPES),
                           eval_episodes_fn=lambda split, seed: shaped_episodes(seed))
    trainer.updater.ensure_variables(shaped_episodes(0)[0])
    traces = count_traces(trainer.learner)
    first = trainer.validation.run(trainer.predict_fn, "valid")
    second = trainer.validation.run(trainer.predict_fn, "test")
    assert len(traces) == 1
    records = first["sources"]["episodes"]["episodes"] + second["sources"]["episodes"]["episodes"]
    assert sorted({(r["num_support"], r["num_query"]) for r in records}) == sorted(
        {(w * s, w * q) for w, s, q in SHAPES})


def test_evaluate_traces_the_predict_function_once():
    # Built first, as `ctx_tf.evaluate` builds it (a tf.function that creates variables
    # traces twice).
    learner = build_learner_variables(toy_learner(), 28)
    traces = count_traces(learner)
    setup = protocol.EvaluationSetup(records_root=None, sources=("a", "b"), split=Split.TEST,
                                     num_episodes=len(SHAPES), seed=3, image_size=28)
    results = protocol.evaluate(learner, setup, log=lambda message: None,
                                episodes_fn=lambda name, split, seed: shaped_episodes(seed))
    assert len(traces) == 1
    assert all(len(source["episodes"]) == len(SHAPES) for source in results["sources"].values())
    # The traced function still computes each episode: its logits have the episode's shape.
    predict_fn = protocol.make_predict_fn(learner)
    for episode in shaped_episodes(0):
        logits = predict_fn(episode)[0]
        assert logits.shape == (episode.query_labels.shape[0], int(tf.reduce_max(
            episode.support_labels)) + 1)
    assert len(traces) == 2  # one more predict function, one more trace
