"""Episode statistics of the official Meta-Dataset protocol (docs/protocol.md §8.2).

Per episode, accuracy = fraction of its query images whose arg-max logit is the true label.
Per source, mean = average of the per-episode accuracies (episodes weighted equally) and
ci95 = 1.96 * std(accuracies, ddof=0) / sqrt(num_episodes). Values are fractions in [0, 1].

Nothing here imports TensorFlow.
"""

import math

import numpy as np

Z_95 = 1.96


def episode_accuracy(logits, labels):
    """Fraction of queries whose arg-max logit equals the label.

    Args:
      logits: `[num_query, num_ways]` array-like.
      labels: `[num_query]` integer labels in `0..num_ways-1`.

    Ties are broken towards the lower class index, as `argmax` does in NumPy and TensorFlow.
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2:
        raise ValueError(f"logits must be [num_query, num_ways], got shape {logits.shape}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(
            f"labels must be [num_query] = [{logits.shape[0]}], got shape {labels.shape}")
    if logits.shape[0] == 0:
        raise ValueError("an episode without query images has no accuracy")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(
            f"labels must be in 0..{logits.shape[1] - 1}, got range "
            f"{labels.min()}..{labels.max()}")
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def mean_and_ci95(values):
    """`(mean, ci95)` of per-episode values: ci95 = 1.96 * std(ddof=0) / sqrt(n)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"need a non-empty 1-D list of per-episode values, got shape "
                         f"{values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("per-episode values must be finite")
    n = values.size
    return float(values.mean()), float(Z_95 * values.std(ddof=0) / math.sqrt(n))


def std_from_ci95(ci95, num_episodes):
    """The per-episode standard deviation a published ci95 implies: ci95 * sqrt(n) / 1.96."""
    return ci95 * math.sqrt(num_episodes) / Z_95


def _sources_of(results):
    """The `{source: {...}}` part of a results mapping (or the mapping itself)."""
    if isinstance(results, dict) and isinstance(results.get("sources"), dict):
        return results["sources"]
    return results


def _episodes_of(sources, source):
    if source not in sources:
        return None
    return sources[source]["episodes"]


def paired_difference(results_a, results_b, sources=None):
    """Per-source paired difference `a - b` of two evaluations on identical episodes.

    Two seeded evaluations with the same seed, split and episode configuration see the same
    episodes, so the per-episode differences remove the episode-to-episode variance that
    dominates each model's own CI. For every source evaluated by both:
    `mean = mean(acc_a - acc_b)`, `ci95 = 1.96 * std(acc_a - acc_b, ddof=0) / sqrt(n)`.

    Args:
      results_a, results_b: results mappings as written to `results.json` (or their
        `"sources"` part).
      sources: names to compare (default: every source both results contain).

    Returns:
      `{source: {"mean", "ci95", "num_episodes", "mean_a", "mean_b", "significant",
      "image_mismatches"}}`; `significant` is True when the CI excludes 0;
      `image_mismatches` counts episodes with the same classes and shots whose image digests
      differ (expected 0 on one machine; float rounding elsewhere can make a few differ).

    Raises:
      ValueError: no common source, different episode counts, or different episodes (the
        per-episode fingerprints -- classes, shots and queries -- differ: other seed, split,
        records or episode config).
    """
    sources_a, sources_b = _sources_of(results_a), _sources_of(results_b)
    if sources is None:
        sources = [s for s in sources_a if s in sources_b]
        if not sources:
            raise ValueError(
                f"the two results have no source in common ({sorted(sources_a)} vs "
                f"{sorted(sources_b)})")
    out = {}
    for source in sources:
        eps_a, eps_b = _episodes_of(sources_a, source), _episodes_of(sources_b, source)
        if eps_a is None or eps_b is None:
            raise ValueError(f"source {source!r} is missing from "
                             f"{'the first' if eps_a is None else 'the second'} results")
        if len(eps_a) != len(eps_b):
            raise ValueError(
                f"{source}: {len(eps_a)} vs {len(eps_b)} episodes; a paired comparison needs "
                "the same episodes (same --seed, --split and --num_episodes)")
        for i, (ea, eb) in enumerate(zip(eps_a, eps_b)):
            fa, fb = ea.get("fingerprint"), eb.get("fingerprint")
            if fa is None or fb is None or fa != fb:
                raise ValueError(
                    f"{source}: episode {i} differs between the two results (fingerprint "
                    f"{fa} vs {fb}); a paired comparison needs identical episodes: evaluate "
                    "both models with the same --seed, --split, records and episode config")
        image_mismatches = sum(
            1 for ea, eb in zip(eps_a, eps_b)
            if ea.get("image_digest") is not None and eb.get("image_digest") is not None
            and ea["image_digest"] != eb["image_digest"])
        acc_a = np.array([e["accuracy"] for e in eps_a], dtype=np.float64)
        acc_b = np.array([e["accuracy"] for e in eps_b], dtype=np.float64)
        mean, ci95 = mean_and_ci95(acc_a - acc_b)
        out[source] = {
            "mean": mean,
            "ci95": ci95,
            "num_episodes": int(acc_a.size),
            "mean_a": float(acc_a.mean()),
            "mean_b": float(acc_b.mean()),
            "significant": bool(abs(mean) > ci95),
            "image_mismatches": image_mismatches,
        }
    return out
