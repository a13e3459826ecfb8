"""Reading and writing the official (TF1, name-based) checkpoints of CrossTransformers.

The official google-research/meta-dataset CTX checkpoints are TF1 `Saver` checkpoints whose
keys are variable-scope paths, e.g. for ResNet-34:

    resnet34/conv1/weight                                   [7, 7, 3, 64]   (HWIO, no biases)
    resnet34/conv1/batch_norm/{offset,scale,mean_ema,var_ema}   [1, 1, 1, 64]
    resnet34/conv{2..5}_x/bottleneck_{b}/conv{1,2}/weight (+ batch_norm/...)
    resnet34/conv{S}_x/bottleneck_0/identity/projection_conv/weight (+ batch_norm/...)
    tformer_keys/weight, tformer_values/weight              [1, 1, 512, query_dim/val_dim]
    global_step                                             int64 scalar

and for the four-layer convnet (the official CTX config's backbone)
`four_layer_convnet/layer_{0..3}/weight` `[3, 3, C_in, 64]` with their batch norms, and the
projections `[1, 1, 64, ...]`.

Training checkpoints also hold optimizer state (`<var>/Adam`, `<var>/Adam_1`, `beta1_power`,
`beta2_power`) and per-replica copies (names containing `replica_`); these are not part of the
model and are ignored (and reported) on loading.

API:
    official_name_map(learner) -> {official name: tf.Variable}
    load_official_checkpoint(learner, prefix, strict=True) -> OfficialLoadReport
    save_official_checkpoint(learner, prefix, global_step=0) -> prefix
    is_official_checkpoint(prefix) -> bool
    write_name_based_checkpoint(prefix, {name: array}) -> prefix  (low-level writer)

Paths may be any `tf.io.gfile` path (local, gs://, ...).
"""

import dataclasses
import re
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from ctx_tf.errors import UserError

GLOBAL_STEP = "global_step"
# The keys whose presence identifies an official checkpoint: the first convolution of each
# official backbone (ResNet-34, and the four-layer convnet of the official CTX config).
OFFICIAL_MARKER_KEYS = ("resnet34/conv1/weight", "four_layer_convnet/layer_0/weight")
# Not model variables: optimizer slots and accumulators, per-replica copies, and the object
# graph a TF2 `tf.train.Checkpoint` would add.
_OPTIMIZER_PATTERN = re.compile(
    r"(/Adam(_\d+)?$)|(^|/)beta[12]_power(_\d+)?$|replica_|(/Momentum$)|(/RMSProp(_\d+)?$)"
    r"|^_CHECKPOINTABLE_OBJECT_GRAPH$")
_BATCH_NORM_PATTERN = re.compile(r"/batch_norm/(offset|scale|mean_ema|var_ema)$")


class OfficialCheckpointError(UserError, ValueError):
    """The checkpoint does not match the learner (missing, unexpected or mis-shaped variables)."""


@dataclasses.dataclass
class OfficialLoadReport:
    """What `load_official_checkpoint` did.

    loaded: official names assigned to the learner.
    missing: model variables of the learner absent from the checkpoint.
    unexpected: checkpoint keys that are neither model variables nor optimizer state.
    shape_mismatches: (name, checkpoint shape, learner's official shape).
    ignored: optimizer state / replica variables found in the checkpoint (not loaded).
    global_step: the checkpoint's `global_step` (None when absent).
    """

    prefix: str
    loaded: List[str]
    missing: List[str]
    unexpected: List[str]
    shape_mismatches: List[Tuple[str, List[int], List[int]]]
    ignored: List[str]
    global_step: Optional[int]

    @property
    def ok(self):
        return not (self.missing or self.unexpected or self.shape_mismatches)

    def summary(self):
        parts = [f"loaded {len(self.loaded)} variables from {self.prefix}"]
        if self.global_step is not None:
            parts.append(f"global_step {self.global_step}")
        if self.ignored:
            parts.append(f"ignored {len(self.ignored)} optimizer/replica variables")
        if self.missing:
            parts.append(f"{len(self.missing)} missing")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected")
        if self.shape_mismatches:
            parts.append(f"{len(self.shape_mismatches)} mis-shaped")
        return "; ".join(parts)


def is_optimizer_state(name):
    """True for optimizer slots/accumulators and replica copies (not model variables)."""
    return bool(_OPTIMIZER_PATTERN.search(name))


def official_shape(name, variable):
    """The official checkpoint shape of our `variable` named `name` (BN vectors: [1,1,1,C])."""
    shape = [int(d) for d in variable.shape]
    if _BATCH_NORM_PATTERN.search(name):
        return [1, 1, 1, int(np.prod(shape))]
    return shape


def official_name_map(learner) -> Dict[str, tf.Variable]:
    """{official name: variable} for the learner's backbone and head (no global step).

    The learner must have its variables (call it once, or `learners.build_learner_variables`).
    Raises `OfficialCheckpointError` if some learner variable has no official name (so that
    every model variable is accounted for) or two names share a variable.
    """
    if not learner.variables:
        raise OfficialCheckpointError(
            "official_name_map: the learner has no variables yet; build it with "
            "learners.build_learner_variables(learner, image_size) or call it on an episode")
    names = learner.official_variable_names()
    mapped = {}
    for name, variable in names.items():
        key = id(variable)
        if key in mapped:
            raise OfficialCheckpointError(
                f"official names {mapped[key]!r} and {name!r} refer to the same variable")
        mapped[key] = name
    unmapped = sorted(v.name for v in learner.variables if id(v) not in mapped)
    if unmapped:
        raise OfficialCheckpointError(
            f"{len(unmapped)} learner variables have no official name: {', '.join(unmapped)}")
    return dict(sorted(names.items()))


def _shape_str(shape):
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def load_official_checkpoint(learner, prefix, strict=True) -> OfficialLoadReport:
    """Loads an official TF1 checkpoint (`prefix`, or a directory: its latest) into `learner`.

    Every model variable is accounted for: with `strict` (default) nothing is assigned and an
    `OfficialCheckpointError` lists the missing, unexpected (non-optimizer) and mis-shaped
    variables (checkpoint shape and learner shape). BN vectors are reshaped between the
    official `[1, 1, 1, C]` and the learner's shape. Optimizer state and `replica_` variables
    are ignored and listed in the report. Without `strict`, matching variables are loaded and
    the rest is only reported. The report's `global_step` is the checkpoint's, if present.
    """
    name_map = official_name_map(learner)
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    ignored = sorted(k for k in shapes if is_optimizer_state(k))
    model_keys = {k for k in shapes if not is_optimizer_state(k) and k != GLOBAL_STEP}
    missing = sorted(set(name_map) - model_keys)
    unexpected = sorted(model_keys - set(name_map))
    mismatches = []
    for name in sorted(set(name_map) & model_keys):
        ckpt_shape = [int(d) for d in shapes[name]]
        expected = official_shape(name, name_map[name])
        if ckpt_shape != expected:
            mismatches.append((name, ckpt_shape, expected))
    if strict and (missing or unexpected or mismatches):
        lines = [f"official checkpoint {prefix} does not match the learner:"]
        if missing:
            lines.append(f"  missing ({len(missing)}): " + ", ".join(missing))
        if unexpected:
            lines.append(f"  unexpected ({len(unexpected)}): " + ", ".join(unexpected))
        for name, ckpt_shape, expected in mismatches:
            lines.append(f"  shape mismatch: {name}: checkpoint {_shape_str(ckpt_shape)}, "
                         f"learner {_shape_str(expected)}")
        raise OfficialCheckpointError("\n".join(lines))
    bad = {m[0] for m in mismatches}
    loaded = []
    for name in sorted(set(name_map) & model_keys):
        if name in bad:
            continue
        variable = name_map[name]
        value = np.reshape(reader.get_tensor(name), [int(d) for d in variable.shape])
        variable.assign(value.astype(variable.dtype.as_numpy_dtype, copy=False))
        loaded.append(name)
    global_step = None
    if GLOBAL_STEP in shapes:
        global_step = int(np.asarray(reader.get_tensor(GLOBAL_STEP)).reshape(-1)[0])
    return OfficialLoadReport(prefix=str(prefix), loaded=loaded, missing=missing,
                              unexpected=unexpected, shape_mismatches=mismatches,
                              ignored=ignored, global_step=global_step)


def write_name_based_checkpoint(prefix, tensors):
    """Writes `{name: numpy value}` as a TF1 name-based (`tf.compat.v1.train.Saver`) checkpoint.

    Values are fed through placeholders (not embedded in the graph). Returns the prefix.
    """
    prefix = str(prefix)
    graph = tf.Graph()
    with graph.as_default():
        feeds, var_list, initializers = {}, {}, []
        for name, value in tensors.items():
            value = np.asarray(value)
            placeholder = tf.compat.v1.placeholder(tf.as_dtype(value.dtype), shape=value.shape)
            variable = tf.compat.v1.Variable(placeholder, name=name, trainable=False)
            feeds[placeholder] = value
            var_list[name] = variable
            initializers.append(variable.initializer)
        saver = tf.compat.v1.train.Saver(var_list=var_list, write_version=tf.compat.v1.train.SaverDef.V2)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(initializers, feed_dict=feeds)
            saved = saver.save(session, prefix, write_meta_graph=False, write_state=True)
    return saved


def save_official_checkpoint(learner, prefix, global_step=0):
    """Writes the learner as an official TF1 checkpoint (official names and shapes, int64
    `global_step`), readable by `tf.train.load_checkpoint` and the official code. Returns the
    prefix."""
    tensors = {}
    for name, variable in official_name_map(learner).items():
        tensors[name] = np.reshape(variable.numpy(), official_shape(name, variable))
    tensors[GLOBAL_STEP] = np.asarray(int(global_step), np.int64)
    return write_name_based_checkpoint(prefix, tensors)


def is_official_checkpoint(prefix) -> bool:
    """True if `prefix` (or a directory's latest checkpoint) is an official TF1 CTX checkpoint
    (it holds `resnet34/conv1/weight` or `four_layer_convnet/layer_0/weight`); False if
    unreadable or in another layout."""
    try:
        reader = tf.train.load_checkpoint(str(prefix))
    except (tf.errors.OpError, ValueError):
        return False
    return any(reader.has_tensor(key) for key in OFFICIAL_MARKER_KEYS)
