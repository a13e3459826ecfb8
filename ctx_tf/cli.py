"""The command-line layer of every ctx_tf command: error contract, quiet start, gin parsing.

A command ends with

    if __name__ == "__main__":
        cli.run("train", main)

and gets: absl flag parsing; the user's mistakes (`UserError`, absl flag errors,
`app.UsageError`, a missing or unreadable path given on the command line) reported as ONE line
`ctx_tf.train: error: <message>` with exit code 2 and no traceback; Ctrl-C as one line and exit
code 130; any other exception raised with its traceback (a bug). TensorFlow is imported and its
devices initialised with its start-up chatter captured (`quiet_tensorflow`). `--verbose` (or
CTX_TF_VERBOSE=1) shows everything: tracebacks of user errors and TensorFlow's logs.

`parse_gin` is the one gin-parsing helper of the commands.
"""

import atexit
import contextlib
import gc
import importlib
import logging
import os
import re
import sys
import tempfile
import traceback
import warnings

import gin
import gin.resource_reader
from absl import app
from absl import flags
from absl import logging as absl_logging

from ctx_tf.errors import UserError

FLAGS = flags.FLAGS
VERBOSE_ENV = "CTX_TF_VERBOSE"
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
REPO_GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gin")
# Every module that registers gin configurables a config file may name. Imported by name, when
# a config is parsed, so that importing this module never imports TensorFlow.
CONFIGURABLE_MODULES = (
    "ctx_tf.data.config", "ctx_tf.data.pipeline", "ctx_tf.data.sampling", "ctx_tf.data.simclr",
    "ctx_tf.models.backbones", "ctx_tf.models.batch_norm", "ctx_tf.models.cross_transformer",
    "ctx_tf.training.loop", "ctx_tf.training.episodes", "ctx_tf.training.final_test",
    "ctx_tf.learners")

# absl keeps one flag registry per process; several command modules may import this one.
if "verbose" not in FLAGS:
    flags.DEFINE_bool("verbose", False, "Show tracebacks of user errors and TensorFlow's "
                      f"start-up logs (or set {VERBOSE_ENV}=1).")

_TRUE = ("1", "true", "yes", "on")


def verbose():
    """True with --verbose or CTX_TF_VERBOSE=1 (before flags are parsed: a bare --verbose)."""
    if os.environ.get(VERBOSE_ENV, "").strip().lower() in _TRUE:
        return True
    if FLAGS.is_parsed():
        return bool(FLAGS.verbose)
    return "--verbose" in sys.argv[1:]


# ----------------------------------------------------------------------------- error contract

def run(command, main, *, tensorflow=True, argv=None):
    """Runs `main(argv)` under absl's app.run with the error contract of the module docstring.

    `command` names the program in messages (`ctx_tf.<command>: error: ...`); with `tensorflow`
    True, TensorFlow is imported quietly (`quiet_tensorflow`) before `main` runs.
    """
    prog = f"ctx_tf.{command}"

    def parse_flags(args):
        try:
            return FLAGS(args)
        except SystemExit:  # --help: not a failed start, nothing captured to show
            end_quiet_start()
            raise
        except flags.Error as e:
            _exit_user_error(prog, f"{e} (see --helpfull)", e)

    def guarded_main(args):
        try:
            if tensorflow:
                quiet_tensorflow()
            else:
                end_quiet_start()
                _quiet_python_logs()
            result = main(args)
            _release_pipelines()
            return result
        except KeyboardInterrupt as e:
            end_quiet_start()
            if verbose():
                traceback.print_exc()
            _release_pipelines(e)
            print(f"{prog}: interrupted", file=sys.stderr, flush=True)
            sys.exit(EXIT_INTERRUPTED)
        except (UserError, app.UsageError) as e:
            _exit_user_error(prog, str(e), e)
        except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as e:
            message = _path_flag_message(e)
            if message is None:
                raise
            _exit_user_error(prog, message, e)

    app.run(guarded_main, argv=argv, flags_parser=parse_flags)


def one_line(message):
    """`message` with its lines joined (gin and absl messages span several)."""
    return " ".join(line.strip() for line in str(message).splitlines() if line.strip())


def _release_pipelines(error=None):
    """Frees what the command built (tf.data iterators included) while Python still runs.

    An iterator still alive at interpreter exit is deleted during finalization, where
    TensorFlow can wait forever for a generator call that needs the interpreter. The frames
    of a failed command are kept alive by its traceback, so that is dropped first.
    """
    while error is not None:
        error.__traceback__ = None
        error = error.__cause__ or error.__context__
    gc.collect()


def _exit_user_error(prog, message, error):
    if verbose():
        end_quiet_start()
        traceback.print_exception(error)
    _release_pipelines(error)
    end_quiet_start()  # a user's mistake, not a failed start: TensorFlow's logs stay hidden
    print(f"{prog}: error: {one_line(message)}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USER_ERROR)


def _path_flag_message(error):
    """'--flag=value: <reason>' for the command-line flag naming the path of `error`, or None.

    The flag names it when the path is the flag's value, or lies under it and the flag's path
    itself is missing (FileNotFoundError), unreadable (PermissionError) or a file
    (NotADirectoryError).
    """
    if error.filename is None:
        return None
    target = os.path.abspath(os.fsdecode(error.filename))
    for name in FLAGS:
        flag = FLAGS[name]
        if not flag.present or name != flag.name:  # short names alias the same flag
            continue
        values = flag.value if isinstance(flag.value, list) else [flag.value]
        for value in values:
            if not isinstance(value, str) or not value or "://" in value:
                continue
            path = os.path.abspath(os.path.expanduser(value))
            under = target.startswith(path.rstrip(os.sep) + os.sep)
            reason = error.strerror or str(error)
            if target == path:
                return f"--{name}={value}: {reason}"
            if under and isinstance(error, NotADirectoryError) and os.path.isfile(path):
                return f"--{name}={value} is a file, not a folder; name a folder"
            if under and (isinstance(error, PermissionError) or not os.path.exists(path)):
                return f"--{name}={value}: {reason} ({os.fsdecode(error.filename)})"
    return None


# ------------------------------------------------------------------------------ quiet start

class _FdCapture:
    """File descriptor 2 (C++ logs included) redirected into a temporary file between `start`
    and `stop`; `text` holds what was written once stopped."""

    def __init__(self):
        self.text = ""
        self._saved = self._sink = None

    def start(self):
        sys.stderr.flush()
        try:
            self._saved = os.dup(2)
        except OSError:  # no stderr to capture
            return self
        self._sink = tempfile.TemporaryFile()
        os.dup2(self._sink.fileno(), 2)
        return self

    def stop(self, replay=False):
        """Restores fd 2; with `replay`, writes what was captured to it."""
        if self._saved is None:
            return self.text
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._saved = None
        self._sink.seek(0)
        self.text = self._sink.read().decode("utf-8", "replace")
        self._sink.close()
        if replay:
            sys.stderr.write(self.text)
            sys.stderr.flush()
        return self.text


@contextlib.contextmanager
def captured_stderr():
    """Redirects file descriptor 2 (C++ logs included) into a temporary file.

    Yields an object whose `text` holds what was written, once the block ends. If the block
    raises, the captured text is written to the real stderr before the exception propagates.
    """
    capture = _FdCapture().start()
    failed = True
    try:
        yield capture
        failed = False
    finally:
        capture.stop(replay=failed)


_TF_LOG_LINE = re.compile(r"([IWEF])\d{4} ")
_TF_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog()"


def _lines_at_or_above(text, min_level):
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


def _quiet_python_logs():
    """absl INFO logs (app.run turns them on) and TF/Keras Python deprecation warnings off."""
    if verbose():
        return
    if not FLAGS["verbosity"].present:
        absl_logging.set_verbosity(absl_logging.WARNING)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category,
                                module=r"(tensorflow|tf_keras|keras)(\.|$)")


# The start-up capture: (capture, the user's own TF_CPP_MIN_LOG_LEVEL or None), or None.
_startup = None
_USER_TF_LOG_LEVEL = {}


def begin_quiet_start():
    """Starts capturing stderr at the file-descriptor level, until `end_quiet_start`.

    `python -m ctx_tf.<command>` imports the ctx_tf package before the command's module, whose
    imports load TensorFlow; the package calls this then, so that TensorFlow's import-time C++
    logs are captured too. If the process ends before the capture does (a crash before
    `run`), what was captured is replayed. Nothing is captured with --verbose.
    """
    global _startup
    if _startup is not None or verbose():
        return
    # The user's own level, read before the first capture sets the default.
    user_level = _USER_TF_LOG_LEVEL.setdefault("value", os.environ.get("TF_CPP_MIN_LOG_LEVEL"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # errors only, once TF's logging is up
    _startup = (_FdCapture().start(), user_level)
    atexit.register(_replay_unfinished_start)


def end_quiet_start(failed=False):
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
            text = _lines_at_or_above(text, int(user_level))
        except ValueError:
            pass
    sys.stderr.write(text)
    sys.stderr.flush()


def _replay_unfinished_start():
    end_quiet_start(failed=True)


def quiet_tensorflow():
    """Imports TensorFlow and initialises its devices without their start-up chatter.

    What TensorFlow writes to stderr meanwhile is captured at the file-descriptor level (its
    C++ logs bypass Python) and dropped, or shown if the import fails (`begin_quiet_start`).
    TF_CPP_MIN_LOG_LEVEL defaults to 2 (errors only afterwards); a value the user set is kept,
    and the captured lines at or above it are shown. With --verbose nothing is captured.
    """
    begin_quiet_start()
    try:
        import tensorflow as tf  # heavy; imported here so that the import can be captured

        tf.config.list_physical_devices()  # initialises the devices (CUDA probing logs)
    except BaseException:
        end_quiet_start(failed=True)
        raise
    end_quiet_start()
    _quiet_python_logs()


# ----------------------------------------------------------------------------------- gin

class _DropGinProbeLogs(logging.Filter):
    """Drops gin's resource reader's logs: for an include it probes every search directory as
    a Python package too and logs "Path not found" (ERROR) for each miss; only the final miss
    matters, and gin raises for it."""

    def filter(self, record):
        return os.path.normcase(record.pathname) != _GIN_RESOURCE_READER


_GIN_RESOURCE_READER = os.path.normcase(
    os.path.splitext(gin.resource_reader.__file__)[0] + ".py")


@contextlib.contextmanager
def _gin_search_path(directories):
    """Gin's include search path is '' then `directories`, for this parse only (gin offers no
    public way to remove a directory; its list would grow, and a directory of an earlier parse
    would win over this parse's own)."""
    prefixes = gin.config._LOCATION_PREFIXES  # pylint: disable=protected-access
    saved = list(prefixes)
    prefixes[:] = [""] + list(dict.fromkeys(directories))
    quiet = _DropGinProbeLogs()
    root = logging.getLogger()  # gin's resource reader logs through the root logger
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)
        prefixes[:] = saved


def import_configurables(modules=CONFIGURABLE_MODULES):
    """Imports `modules`, registering their gin configurables."""
    for name in modules:
        importlib.import_module(name)


def parse_gin(config_files, bindings, search_dirs=(REPO_GIN_DIR,),
              modules=CONFIGURABLE_MODULES):
    """Replaces the global gin configuration with `config_files` then `bindings` (later wins).

    Includes resolve in the working directory, beside each config file, then in `search_dirs`
    (the repository's gin/ folder). `modules` registering the configurables are imported first.
    Raises UserError naming the missing file, or gin's message with the file:line or binding.
    """
    config_files = [os.fspath(path) for path in config_files]
    bindings = [str(binding) for binding in bindings]
    import_configurables(modules)
    for path in config_files:
        if not os.path.isfile(path):
            raise UserError(f"gin config file {path} not found (--gin_config takes a path to a "
                            ".gin file)")
    directories = [os.path.dirname(os.path.abspath(path)) for path in config_files]
    directories += [os.fspath(directory) for directory in search_dirs]
    gin.clear_config()
    with _gin_search_path(directories):
        try:
            gin.parse_config_files_and_bindings(config_files, bindings)
        except SyntaxError as e:
            where = f"{e.filename}:{e.lineno}" if e.filename else f"binding {e.text!r}"
            raise UserError(f"gin configuration: syntax error at {where}: "
                            f"{str(e.msg).rstrip('.')}"
                            + (f" ({e.text.strip()})" if e.filename and e.text else "")) from e
        except (ValueError, KeyError, TypeError, ImportError, OSError) as e:
            raise UserError(_gin_error_message(e)) from e


_GIN_FILE_LOCATION = re.compile(r'^In file "(.*)", line (\d+)$')


def _gin_error_message(error):
    """gin's message on one line: the error, then each location (innermost first) with its
    text; gin's dump of the operative config and its caret lines are dropped."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith(("#", "^"))]
    if not lines:
        return f"gin configuration: {type(error).__name__}"
    parts = []
    for line in lines[1:]:
        location = _GIN_FILE_LOCATION.match(line)
        if location:
            parts.append(f"at {location.group(1)}:{location.group(2)}")
        elif line.startswith("In bindings string line"):
            parts.append("in the --gin_bindings")
        elif parts and parts[-1].startswith(("at ", "in the")):
            parts[-1] += f" ({line})"
        else:
            parts.append(line)
    return "gin configuration: " + ", ".join([lines[0].rstrip(":.").strip()] + parts)
