"""The versions of the Meta-Dataset benchmark: which sources each trains, validates and tests on.

* `md_v1`, the original benchmark (Triantafillou et al., ICLR 2020): train on `ilsvrc_2012`
  (ImageNet only, official `setups/imagenet.gin`) or on eight sources (`setups/all.gin`),
  validate on ILSVRC, test on ten sources. Every published leaderboard row is an md_v1 result.
* `md_v2`, the benchmark of VTAB+MD (Dumoulin et al., NeurIPS 2021 Datasets and Benchmarks,
  arXiv:2104.02638; official `setups/imagenet_v2.gin`, `setups/all_v2.gin`): `ilsvrc_2012_v2`
  puts all 1000 ILSVRC classes in TRAIN, so ILSVRC is never evaluated; VGG Flower is left to
  VTAB; the eight test sources are the rest. Validation uses the VALID classes of the test
  sources that have them (not traffic_sign).

A run's version follows from its training sources (`of_training`): `ilsvrc_2012_v2` makes it
md_v2, `ilsvrc_2012` md_v1; a run on neither (Omniglot alone, the demo, your own folders) has
none. Results name their version and are set beside published rows of that version only.
"""

import dataclasses
from typing import Mapping, Optional, Sequence

from ctx_tf.errors import UserError

MD_V1 = "md_v1"
MD_V2 = "md_v2"
DEFAULT = MD_V1


class BenchmarkError(UserError, ValueError):
    """Sources or a version that do not belong together; the message names them."""


@dataclasses.dataclass(frozen=True)
class BenchmarkVersion:
    """One version of the benchmark.

    Attributes:
      name: `"md_v1"` or `"md_v2"` (the `--benchmark` value).
      title: for tables and logs.
      imagenet_source: the ILSVRC source it trains on.
      train_sources: the all-sources training list (the official `setups/all*.gin`).
      valid_sources: the official setups' validation list (`benchmark.eval_datasets`).
      test_sources: the sources its test evaluates, in the leaderboard's column order.
      held_out: `{source: why}`: sources never evaluated under this version.
      reference: the article that defines it.
    """

    name: str
    title: str
    imagenet_source: str
    train_sources: tuple
    valid_sources: tuple
    test_sources: tuple
    held_out: Mapping[str, str]
    reference: str


_V2_ILSVRC = "md_v2 trains on all 1000 ILSVRC classes (ilsvrc_2012_v2) and tests no ILSVRC class"

VERSIONS = {
    MD_V1: BenchmarkVersion(
        name=MD_V1, title="Meta-Dataset v1", imagenet_source="ilsvrc_2012",
        train_sources=("ilsvrc_2012", "aircraft", "cu_birds", "omniglot", "quickdraw",
                       "vgg_flower", "dtd", "fungi"),
        valid_sources=("ilsvrc_2012",),
        test_sources=("ilsvrc_2012", "omniglot", "aircraft", "cu_birds", "dtd", "quickdraw",
                      "fungi", "vgg_flower", "traffic_sign", "mscoco"),
        held_out={"ilsvrc_2012_v2": "ilsvrc_2012_v2 is md_v2's training source, without VALID "
                                    "or TEST classes; md_v1 evaluates ilsvrc_2012"},
        reference="Triantafillou et al., Meta-Dataset, ICLR 2020 (arXiv:1903.03096)"),
    MD_V2: BenchmarkVersion(
        name=MD_V2, title="Meta-Dataset v2", imagenet_source="ilsvrc_2012_v2",
        train_sources=("ilsvrc_2012_v2", "aircraft", "cu_birds", "omniglot", "quickdraw",
                       "dtd", "fungi"),
        valid_sources=("fungi", "aircraft", "quickdraw", "omniglot", "mscoco", "cu_birds",
                       "dtd"),
        test_sources=("omniglot", "aircraft", "cu_birds", "dtd", "quickdraw", "fungi",
                      "traffic_sign", "mscoco"),
        held_out={"ilsvrc_2012": _V2_ILSVRC, "ilsvrc_2012_v2": _V2_ILSVRC,
                  "vgg_flower": "md_v2 leaves VGG Flower to VTAB (VTAB+MD)"},
        reference="Dumoulin et al., Comparing Transfer and Meta Learning Approaches on a "
                  "Unified Few-Shot Classification Benchmark, NeurIPS 2021 Datasets and "
                  "Benchmarks (arXiv:2104.02638)"),
}


def get(name):
    """The `BenchmarkVersion` called `name`."""
    if name not in VERSIONS:
        raise BenchmarkError(f"unknown benchmark version {name!r}; known: "
                             f"{', '.join(VERSIONS)}")
    return VERSIONS[name]


def of_training(train_sources: Sequence[str], where="benchmark.train_datasets"):
    """The version a run on `train_sources` trains for (`"md_v1"`, `"md_v2"`), or None when
    it trains on no ILSVRC source. Raises `BenchmarkError` when the list mixes the versions
    (both ILSVRC sources, or md_v2's with a source md_v2 holds out)."""
    sources = list(train_sources)
    if "ilsvrc_2012_v2" in sources:
        mixed = [s for s in sources if s in VERSIONS[MD_V2].held_out and s != "ilsvrc_2012_v2"]
        if mixed:
            raise BenchmarkError(
                f"{where} mixes md_v2's ilsvrc_2012_v2 with {', '.join(mixed)}, which md_v2 "
                f"holds out ({'; '.join(VERSIONS[MD_V2].held_out[s] for s in mixed)}); train "
                "on one version's sources")
        return MD_V2
    if "ilsvrc_2012" in sources:
        return MD_V1
    return None


def check_evaluation(version, sources: Sequence[str], where="--datasets"):
    """Raises `BenchmarkError` if `sources` (to be validated or tested) include one that
    `version` holds out; the message names each and why."""
    version = get(version) if isinstance(version, str) else version
    held = [s for s in sources if s in version.held_out]
    if held:
        reasons = "; ".join(dict.fromkeys(version.held_out[s] for s in held))
        raise BenchmarkError(
            f"{where} names {', '.join(held)}, which {version.name} holds out of evaluation "
            f"({reasons}); {version.name} tests {', '.join(version.test_sources)}")


def check_run(requested: Optional[str], trained_for: Optional[str], where: str):
    """Raises `BenchmarkError` when `--benchmark=requested` is not the version the run
    (`where`) trained for; either may be None (unknown)."""
    if requested and trained_for and requested != trained_for:
        imagenet = VERSIONS[trained_for].imagenet_source
        raise BenchmarkError(
            f"--benchmark={requested}, but {where} trained for {trained_for} (on {imagenet}), "
            f"not for {requested}: evaluate it with --benchmark={trained_for} or leave "
            "--benchmark out")
