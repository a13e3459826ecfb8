"""Which published rows a result stands beside, and if none, the one line saying why.

A result is compared with a published leaderboard row only where the source is the official
one (`comparability.check_source`), the protocol the row's (`comparability.check_protocol`),
the benchmark version the row's (`benchmark_versions`) and the model's training setting the
row's (`leaderboard.training_setting`: trained on ImageNet only, or on all datasets); the
verdict of each source is recorded in results.json (`comparability`).
"""

from ctx_tf.data import facts
from ctx_tf.evaluation import benchmark_versions
from ctx_tf.evaluation import comparability
from ctx_tf.evaluation import leaderboard


def _protocol_reasons(results, rows):
    """Why the protocol of `results` differs from each of the published `rows`'."""
    protocol = results.get("protocol", {})
    reasons = []
    for row in rows:
        for reason in comparability.check_protocol(
                protocol.get("num_episodes", 0), protocol.get("image_size"),
                protocol.get("split", "TEST"), protocol.get("episode_config"),
                published_image_size=row.image_size):
            if len(rows) > 1:
                reason = reason.replace("the published row used", f"{row.name} used")
            if reason not in reasons:
                reasons.append(reason)
    return reasons


def benchmark_of(results):
    """The benchmark version `results` were measured under (`md_v1` when unrecorded)."""
    return results.get("protocol", {}).get("benchmark") or benchmark_versions.DEFAULT


def _version_reason(results, rows):
    """Why `results` cannot stand beside published `rows` of another benchmark version."""
    version = benchmark_of(results)
    other = [row for row in rows if row.benchmark != version]
    if not other:
        return ""
    names = ", ".join(row.name for row in other)
    theirs = ", ".join(sorted({row.benchmark for row in other}))
    return (f"an {version} result; the published {names} "
            f"{'row is' if len(other) == 1 else 'rows are'} {theirs} and no {version} "
            f"{names} row is published")


def setting_of(results):
    """The leaderboard training setting of the model of `results` (`model.training_setting`:
    "imagenet", "all", or None for another or an unknown one). Results written before the
    field existed were all compared as ImageNet-only runs and keep that reading."""
    model = results.get("model", {})
    return model["training_setting"] if "training_setting" in model else (
        leaderboard.IMAGENET_ONLY)


def setting_note(results, published=("CTX",), setting=None):
    """One line saying why published rows asked for are not shown: none of them exists in
    the run's training setting (empty when every one does)."""
    setting = setting_of(results) if setting is None else setting
    _, missing = leaderboard.published_rows(published, setting)
    if not missing:
        return ""
    names = ", ".join(missing)
    if setting is None:
        datasets = results.get("model", {}).get("train_datasets")
        trained = (f"the model was trained on {', '.join(datasets)}" if datasets
                   else "the model's training datasets are not recorded")
        return (f"not compared with the published {names}: {trained}, and the leaderboard "
                "publishes rows trained on ImageNet only or on all datasets")
    return (f"not compared with the published {names}: no such row is published for "
            f"training on {leaderboard.setting_title(setting)}, the model's training setting")


def comparison_verdicts(results, published=("CTX",), setting=None):
    """`{source: comparability}`: the per-source `comparability` entry of results.json.

    The protocol records the source's check against the official spec (`official`,
    `matches`, `summary`, `differences`: `comparability.SourceCheck.to_json`); this adds
    `published_rows` (the rows it was set against), `comparable` and `withheld` (the one
    line saying why not, empty when comparable). A Meta-Dataset name whose spec was never
    checked (episodes fed in by a test or a caller) is not comparable either, and no result
    is comparable with a published row of another benchmark version, or of another training
    setting (`setting`, default the results' own: `setting_of`).
    """
    setting = setting_of(results) if setting is None else setting
    rows, _ = leaderboard.published_rows(published, setting)
    protocol_reasons = _protocol_reasons(results, rows)
    version_reason = _version_reason(results, rows)
    note = setting_note(results, published, setting) if not rows else ""
    verdicts = {}
    for source, entry in results["sources"].items():
        recorded = entry.get("comparability")
        if source not in facts.SOURCES:
            check = comparability.check_source(source, None)
        elif recorded is None or "official" not in recorded:
            check = comparability.SourceCheck(
                name=source, official=True, matches=False,
                summary="not checked against the official spec (no dataset_spec.json read)")
        else:
            check = comparability.SourceCheck.from_json(source, recorded)
        comparable, reason = comparability.comparison_verdict(check, protocol_reasons)
        if version_reason:
            comparable, reason = False, f"{source}: {version_reason}"
        # Another training setting is the reason only where nothing else already withholds.
        if comparable and note:
            comparable, reason = False, f"{source}: {note}"
        verdicts[source] = dict(check.to_json(), published_rows=[r.name for r in rows],
                                comparable=comparable and bool(rows), withheld=reason)
    return verdicts


def with_comparisons(results, published=("CTX",), setting=None):
    """A copy of `results` whose sources carry their `comparison_verdicts`."""
    verdicts = comparison_verdicts(results, published, setting)
    annotated = dict(results, sources={s: dict(e, comparability=verdicts[s])
                                       for s, e in results["sources"].items()})
    return annotated
