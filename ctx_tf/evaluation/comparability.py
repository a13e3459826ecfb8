"""Whether a result may be set beside the published Meta-Dataset rows.

A published row was measured on the official records of a source under the official protocol.
A result is compared with it only when both hold here too:

* `check_source(name, spec)`: a source whose name is a Meta-Dataset source is checked against
  the shipped official spec (`ctx_tf.data.facts`): classes per split, class names, images per
  class, Omniglot's alphabets, ILSVRC's WordNet subgraphs. Other names (a user's own folders,
  the demo) are never compared.
* `check_protocol(...)`: 600 episodes or more, the published row's image size, the TEST split,
  the official variable-way, variable-shot episode configuration.
* `comparison_verdict(check, reasons)`: the one line saying why a comparison is withheld.
"""

import dataclasses
import functools
import inspect
from collections.abc import Mapping
from typing import Optional, Sequence

from ctx_tf.data import dataset_spec as dataset_spec_lib
from ctx_tf.data import facts
from ctx_tf.data import sampling

MIN_EPISODES = 600
PUBLISHED_SPLIT = "TEST"
NOT_OFFICIAL = "not a Meta-Dataset source"
# The EpisodeDescriptionConfig parameters that decide which episodes are sampled; evaluation
# forces the remaining ones (hierarchies on, no SimCLR episodes) itself.
SAMPLING_PARAMETERS = (
    "num_ways", "num_support", "num_query", "min_ways", "max_ways_upper_bound", "max_num_query",
    "max_support_set_size", "max_support_size_contrib_per_class", "min_log_weight",
    "max_log_weight", "min_examples_in_class", "num_unique_descriptions",
    "episode_description_switch_frequency",
)
_SPLITS = tuple(dataset_spec_lib.Split)
_EXAMPLES = 3  # names quoted in one difference line


@dataclasses.dataclass(frozen=True)
class SourceCheck:
    """How one evaluated source relates to the official spec of its name.

    `official`: the name is a Meta-Dataset source (only those are compared). `matches`: its
    spec equals the official one. `summary`: one line for tables, about the evaluated split.
    `differences`: short lines, one per difference found, over all splits.
    """

    name: str
    official: bool
    matches: bool
    summary: str
    differences: tuple = ()

    def to_json(self):
        return {"official": self.official, "matches": self.matches, "summary": self.summary,
                "differences": list(self.differences)}

    @classmethod
    def from_json(cls, name, payload):
        """The inverse of `to_json` (as stored per source in results.json)."""
        return cls(name=name, official=bool(payload["official"]),
                   matches=bool(payload["matches"]), summary=str(payload["summary"]),
                   differences=tuple(payload.get("differences", ())))


@functools.lru_cache(maxsize=None)
def _official_spec(name):
    return dataset_spec_lib.dataset_spec_from_dict(
        facts.dataset_spec(name), source=f"official {name} spec (ctx_tf.data.facts)")


def _as_spec(name, spec):
    if isinstance(spec, Mapping):
        return dataset_spec_lib.dataset_spec_from_dict(dict(spec), source=f"{name} spec")
    return spec


def _quote(items):
    items = sorted(items, key=str)
    shown = ", ".join(repr(i) for i in items[:_EXAMPLES])
    return shown + (", ..." if len(items) > _EXAMPLES else "")


def _split_view(spec, split):
    """{class name: number of images} of `split`, in class-id order."""
    return {spec.class_names[c]: spec.num_images(c) for c in spec.get_classes(split)}


def _compare_split(split, ours, official):
    """Difference lines of one split; `ours` and `official` are `_split_view`s."""
    tag = split.name
    lines = []
    if len(ours) != len(official):
        lines.append(f"{tag}: {len(ours):,} classes, official {len(official):,}")
    missing = [n for n in official if n not in ours]
    other = [n for n in ours if n not in official]
    if missing:
        lines.append(f"{tag}: {len(missing):,} official class name(s) absent ({_quote(missing)})")
    if other:
        lines.append(f"{tag}: {len(other):,} class name(s) not in the official split "
                     f"({_quote(other)})")
    if not missing and not other and list(ours) != list(official):
        lines.append(f"{tag}: the class names are in another class-id order")
    ours_total, official_total = sum(ours.values()), sum(official.values())
    if ours_total != official_total:
        lines.append(f"{tag}: {ours_total:,} images, official {official_total:,}")
    recounted = [n for n in ours if n in official and ours[n] != official[n]]
    if recounted:
        examples = ", ".join(f"{n!r} {ours[n]:,} vs {official[n]:,}"
                             for n in sorted(recounted)[:_EXAMPLES])
        lines.append(f"{tag}: {len(recounted):,} class(es) hold another number of images "
                     f"({examples}{', ...' if len(recounted) > _EXAMPLES else ''})")
    return lines


def _compare_superclasses(ours, official):
    lines = []
    for split in _SPLITS:
        ours_names = [ours.superclass_names[k] for k in ours.get_superclasses(split)]
        official_names = [official.superclass_names[k] for k in official.get_superclasses(split)]
        if ours_names != official_names:
            lines.append(f"{split.name}: superclasses {_quote(ours_names)}, official "
                         f"{_quote(official_names)}")
            continue
        sizes = [ours.classes_per_superclass[k] for k in ours.get_superclasses(split)]
        official_sizes = [official.classes_per_superclass[k]
                          for k in official.get_superclasses(split)]
        if sizes != official_sizes:
            changed = [n for n, a, b in zip(ours_names, sizes, official_sizes) if a != b]
            lines.append(f"{split.name}: {len(changed)} superclass(es) hold another number of "
                         f"classes ({_quote(changed)})")
    return lines


def _compare_subgraphs(ours, official):
    lines = []
    for split in _SPLITS:
        graph, official_graph = ours.get_split_subgraph(split), official.get_split_subgraph(split)
        nodes = set(graph) ^ set(official_graph)
        edges = ({(n, c) for n, node in graph.items() for c in node.children_ids}
                 ^ {(n, c) for n, node in official_graph.items() for c in node.children_ids})
        if nodes or edges:
            lines.append(f"{split.name}: the WordNet subgraph differs ({len(nodes):,} node(s), "
                         f"{len(edges):,} edge(s))")
    return lines


def check_source(name, spec, split="test"):
    """Checks source `name`'s spec against the official one.

    Args:
      name: the source's name (the records directory's name).
      spec: what `ctx_tf.data.dataset_spec.load_dataset_spec` returns, or the decoded JSON
        object of a `dataset_spec.json`.
      split: the split the evaluation uses; the summary describes it.

    Returns:
      A `SourceCheck`.
    """
    if name not in facts.SOURCES:
        return SourceCheck(name=name, official=False, matches=False, summary=NOT_OFFICIAL)
    split = dataset_spec_lib.as_split(split)
    ours, official = _as_spec(name, spec), _official_spec(name)
    if type(ours) is not type(official):
        kind, official_kind = type(ours).__name__, type(official).__name__
        return SourceCheck(
            name=name, official=True, matches=False,
            summary=f"a {kind}, the official spec is a {official_kind}",
            differences=(f"spec type {kind}, official {official_kind}",))
    views = {s: (_split_view(ours, s), _split_view(official, s)) for s in _SPLITS}
    differences = []
    for s in _SPLITS:
        differences += _compare_split(s, *views[s])
    if isinstance(official, dataset_spec_lib.BiLevelDatasetSpecification):
        differences += _compare_superclasses(ours, official)
    if isinstance(official, dataset_spec_lib.HierarchicalDatasetSpecification):
        differences += _compare_subgraphs(ours, official)
    ours_view, official_view = views[split]
    counts = (f"{split.name}: {sum(ours_view.values()):,} of {sum(official_view.values()):,} "
              f"images; {len(ours_view):,} of {len(official_view):,} classes")
    if not differences:
        return SourceCheck(name=name, official=True, matches=True,
                           summary=f"matches the official spec ({counts})")
    renamed = len([n for n in official_view if n not in ours_view])
    if renamed:
        summary = counts + (f"; {renamed:,} class names differ" if renamed > 1
                            else "; 1 class name differs")
    else:
        summary = counts
    if not any(d.startswith(f"{split.name}:") for d in differences):
        summary += f"; other splits differ ({len(differences)} difference(s))"
    return SourceCheck(name=name, official=True, matches=False, summary=summary,
                       differences=tuple(differences))


@functools.lru_cache(maxsize=None)
def _official_episode_parameters():
    signature = inspect.signature(sampling.EpisodeDescriptionConfig.__init__)
    return {name: signature.parameters[name].default for name in SAMPLING_PARAMETERS}


def episode_config_differences(episode_config):
    """`["num_ways=5 (official None)", ...]`: how `episode_config` departs from the official
    variable-way, variable-shot sampling; `episode_config` is an `EpisodeDescriptionConfig`
    (or any object with its attributes) or a mapping such as results.json records."""
    official = _official_episode_parameters()
    lines = []
    for name, default in official.items():
        if isinstance(episode_config, Mapping):
            if name not in episode_config:
                lines.append(f"{name} not recorded")
                continue
            value = episode_config[name]
        else:
            value = getattr(episode_config, name)
        if isinstance(value, list):  # a JSON round trip turns num_support pairs into lists
            value = tuple(value)
        if value != default:
            lines.append(f"{name}={value!r} (official {default!r})")
    return lines


def check_protocol(num_episodes, image_size, split, episode_config, published_image_size=224):
    """Why a result measured this way cannot stand beside the published row (empty: it can).

    Args:
      num_episodes: episodes evaluated per source.
      image_size: the evaluated image height and width.
      split: the evaluated split (a `Split` or its name).
      episode_config: an `EpisodeDescriptionConfig` (or an object with its attributes) or a
        mapping of its sampling parameters; None when unknown.
      published_image_size: the image size the published row used (224 for CTX).
    """
    reasons = []
    if num_episodes < MIN_EPISODES:
        reasons.append(f"{num_episodes:,} episodes (the published rows use {MIN_EPISODES} or "
                       "more)")
    if image_size != published_image_size:
        reasons.append(f"image size {image_size} (the published row used "
                       f"{published_image_size})")
    split = dataset_spec_lib.as_split(split)
    if split.name != PUBLISHED_SPLIT:
        reasons.append(f"the {split.name} split (the published rows are on {PUBLISHED_SPLIT})")
    if episode_config is None:
        reasons.append("the episode configuration is not recorded")
    else:
        changed = episode_config_differences(episode_config)
        if changed:
            reasons.append("not the official variable-way, variable-shot episodes ("
                           + ", ".join(changed) + ")")
    return reasons


def comparison_verdict(source_check: SourceCheck,
                       protocol_reasons: Optional[Sequence[str]] = ()):
    """`(comparable, reason)`: whether the source's result may be compared with a published
    row, and if not, the one line saying why (empty when comparable)."""
    if not source_check.official:
        return False, f"{source_check.name}: {NOT_OFFICIAL}"
    if not source_check.matches:
        return False, (f"{source_check.name}: not the official records "
                       f"({source_check.summary})")
    if protocol_reasons:
        return False, (f"{source_check.name}: not the official protocol "
                       f"({'; '.join(protocol_reasons)})")
    return True, ""
