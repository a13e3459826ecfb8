"""How the learner computes: the Keras mixed-precision policy and XLA (gin `compute.*`).

    compute.policy = "mixed_bfloat16"   # bf16 compute, float32 variables; no loss scaling
    compute.policy = "mixed_float16"    # fp16 compute with dynamic loss scaling (older GPUs)
    compute.jit_compile = True          # XLA for the train step and the predict function
                                        # (CTX: with CrossTransformerLearner.rematerialize =
                                        # False; the blocked head's loops have dynamic sizes)

Layers take the global policy when they are constructed, so `build_learner` builds under
`policy_scope()` and restores the previous policy afterwards: nothing else in the process
changes. The learner's own `dtype_policy` then tells the trainer whether to scale the loss.
Variables stay float32 under every policy, so checkpoints (ours and official) load unchanged.
"""

import collections
import contextlib

import gin

from ctx_tf.keras import keras

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")

ComputeOptions = collections.namedtuple("ComputeOptions", ["policy", "jit_compile"])


class ComputeError(ValueError):
    """A `compute.*` gin binding has a value ctx_tf cannot use."""


@gin.configurable("compute")
def options(policy="float32", jit_compile=False):
    """The configured `ComputeOptions` (gin: `compute.policy`, `compute.jit_compile`)."""
    if policy not in POLICIES:
        raise ComputeError(f"compute.policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    if not isinstance(jit_compile, bool):
        raise ComputeError(f"compute.jit_compile must be True or False, got {jit_compile!r}")
    return ComputeOptions(policy, jit_compile)


@contextlib.contextmanager
def policy_scope(policy=None):
    """Sets the global Keras policy (default: `compute.policy`) and restores the old one."""
    policy = options().policy if policy is None else options(policy=policy).policy
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield policy
    finally:
        keras.mixed_precision.set_global_policy(previous)


def needs_loss_scaling(learner):
    """True when `learner` computes in float16, whose gradients underflow without scaling."""
    return learner.dtype_policy.compute_dtype == "float16"


def training_optimizer(optimizer, learner):
    """`optimizer`, wrapped in a dynamic `LossScaleOptimizer` when `learner` needs one.

    The wrapper skips (and halves the scale on) any update whose gradients are not finite."""
    if needs_loss_scaling(learner):
        return keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer


def check_jit(learner, jit_compile):
    """Fails when XLA cannot compile `learner`: the rematerialized (blocked) CTX head sizes
    its loop buffers at run time, which XLA does not allow; the dense head compiles."""
    head = getattr(learner, "head", None)
    if jit_compile and getattr(head, "rematerialize", False):
        raise ComputeError(
            "compute.jit_compile = True needs CrossTransformerLearner.rematerialize = False: XLA "
            "cannot compile the rematerialized head's loops, whose sizes depend on the episode")
    return jit_compile
