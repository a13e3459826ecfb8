"""The quiet start of a command: TensorFlow's start-up logs captured and filtered.

TensorFlow writes C++ logs to stderr when it is imported and when its devices initialise
(oneDNN, CPU features, CUDA probing), whatever TF_CPP_MIN_LOG_LEVEL says for the first of
them. A command captures file descriptor 2 from its first line,

    from ctx_tf.cli import quiet_start

    quiet_start.begin_if_main(__name__)

before its imports load TensorFlow, and `ctx_tf.cli.run` ends the capture once TensorFlow
is up (`quiet_tensorflow`): the captured lines are dropped, or those at or above the user's
own TF_CPP_MIN_LOG_LEVEL shown, or all of them if the start failed. With --verbose nothing is
captured. Importing ctx_tf (or this module) captures nothing.
"""

import atexit
import logging
import os
import re
import sys
import warnings

from absl import logging as absl_logging

from ctx_tf.cli import capture as capture_lib
from ctx_tf.cli import flags as cli_flags

_TF_LOG_LINE = re.compile(r"([IWEF])\d{4} ")
_TF_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog()"

# The start-up capture: (capture, the user's own TF_CPP_MIN_LOG_LEVEL or None), or None.
_startup = None
_USER_TF_LOG_LEVEL = {}


def lines_at_or_above(text, min_level):
    """The lines of TensorFlow's C++ log `text` whose severity is >= `min_level` (the scale of
    TF_CPP_MIN_LOG_LEVEL); a line without a severity prefix continues the previous one."""
    kept, severity = [], _TF_SEVERITY["F"]
    for line in text.splitlines(keepends=True):
        match = _TF_LOG_LINE.match(line)
        if match:
            severity = _TF_SEVERITY[match.group(1)]
        elif line.startswith(_ABSL_PREAMBLE):
            severity = _TF_SEVERITY["W"]
        if severity >= min_level:
            kept.append(line)
    return "".join(kept)


def quiet_python_logs():
    """absl INFO logs (app.run turns them on) and TF/Keras Python deprecation warnings off."""
    if cli_flags.verbose():
        return
    if not cli_flags.FLAGS["verbosity"].present:
        absl_logging.set_verbosity(absl_logging.WARNING)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category,
                                module=r"(tensorflow|tf_keras|keras)(\.|$)")


def begin_if_main(module_name):
    """`begin` when `module_name` (the caller's `__name__`) is `"__main__"`: the first line
    of a command module, so that `python -m ctx_tf.<command>` starts quietly and importing
    the module (tests, notebooks) changes nothing."""
    if module_name == "__main__":
        begin()


def begin():
    """Starts capturing stderr at the file-descriptor level, until `end`.

    If the process ends before the capture does (a crash before `ctx_tf.cli.run` ends it),
    what was captured is replayed. Nothing is captured with --verbose.
    """
    global _startup
    if _startup is not None or cli_flags.verbose():
        return
    # The user's own level, read before the first capture sets the default.
    user_level = _USER_TF_LOG_LEVEL.setdefault("value", os.environ.get("TF_CPP_MIN_LOG_LEVEL"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # errors only, once TF's logging is up
    _startup = (capture_lib.FdCapture().start(), user_level)
    atexit.register(_replay_unfinished_start)


def end(failed=False):
    """Ends the start-up capture: the captured lines at or above the user's own
    TF_CPP_MIN_LOG_LEVEL are shown (none if unset), all of them if `failed`."""
    global _startup
    if _startup is None:
        return
    (capture, user_level), _startup = _startup, None
    text = capture.stop()
    if not failed and user_level is None:
        return
    if not failed:
        try:
            text = lines_at_or_above(text, int(user_level))
        except ValueError:
            pass
    sys.stderr.write(text)
    sys.stderr.flush()


def _replay_unfinished_start():
    end(failed=True)


def quiet_tensorflow():
    """Imports TensorFlow and initialises its devices without their start-up chatter.

    What TensorFlow writes to stderr meanwhile is captured (`begin`) and dropped, or shown if
    the import fails. TF_CPP_MIN_LOG_LEVEL defaults to 2 (errors only afterwards); a value the
    user set is kept, and the captured lines at or above it are shown.
    """
    begin()
    try:
        import tensorflow as tf  # heavy; imported here so that the import can be captured

        tf.config.list_physical_devices()  # initialises the devices (CUDA probing logs)
    except BaseException:
        end(failed=True)
        raise
    end()
    quiet_python_logs()
