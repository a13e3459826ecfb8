"""The command layer of ctx_tf: what every `python -m ctx_tf.<command>` shares.

One module per job:

* `contract`: the error contract (`run`: one line `ctx_tf.<command>: error: ...`, exit code 2,
  no traceback for the user's mistakes);
* `capture`: the capture of file descriptor 2 (C++ logs);
* `quiet_start`: TensorFlow's start-up logs captured from a command's first line and
  filtered by the user's TF_CPP_MIN_LOG_LEVEL;
* `gin_config`: the one gin-parsing helper and the configs shipped with ctx_tf;
* `configurables`: the modules that register gin configurables, found without a list;
* `flags`: the flags several commands share, and `--verbose`.

The names commands use are re-exported here (`cli.run`, `cli.parse_gin`, ...). Importing this
package captures nothing and imports no TensorFlow.
"""

from ctx_tf.cli.capture import captured_stderr
from ctx_tf.cli.configurables import configurable_modules, import_configurables
from ctx_tf.cli.contract import EXIT_INTERRUPTED, EXIT_USER_ERROR, one_line, run
from ctx_tf.cli.flags import VERBOSE_ENV, verbose
from ctx_tf.cli.gin_config import GIN_DIR, REPO_GIN_DIR, parse_gin, resolve_config
from ctx_tf.cli.quiet_start import quiet_tensorflow

__all__ = [
    "EXIT_INTERRUPTED", "EXIT_USER_ERROR", "GIN_DIR", "REPO_GIN_DIR", "VERBOSE_ENV",
    "captured_stderr", "configurable_modules", "import_configurables", "one_line",
    "parse_gin", "quiet_tensorflow", "resolve_config", "run", "verbose",
]
