"""The error contract of every ctx_tf command.

A command ends with

    if __name__ == "__main__":
        cli.run("train", main)

and gets: absl flag parsing; the user's mistakes (`UserError`, absl flag errors,
`app.UsageError`, a missing or unreadable path given on the command line) reported as ONE line
`ctx_tf.train: error: <message>` with exit code 2 and no traceback; Ctrl-C as one line and exit
code 130; any other exception raised with its traceback (a bug). TensorFlow is imported and its
devices initialised with its start-up chatter captured (`quiet_start.quiet_tensorflow`).
`--verbose` (or CTX_TF_VERBOSE=1) shows everything: tracebacks of user errors and TensorFlow's
logs.
"""

import gc
import os
import sys
import traceback

from absl import app
from absl import flags

from ctx_tf.cli import flags as cli_flags
from ctx_tf.cli import quiet_start
from ctx_tf.errors import UserError

FLAGS = flags.FLAGS
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


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
            quiet_start.end()
            raise
        except flags.Error as e:
            _exit_user_error(prog, f"{e} (see --helpfull)", e)

    def guarded_main(args):
        try:
            if tensorflow:
                quiet_start.quiet_tensorflow()
            else:
                quiet_start.end()
                quiet_start.quiet_python_logs()
            result = main(args)
            _release_pipelines()
            return result
        except KeyboardInterrupt as e:
            quiet_start.end()
            if cli_flags.verbose():
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
    if cli_flags.verbose():
        quiet_start.end()
        traceback.print_exception(error)
    _release_pipelines(error)
    quiet_start.end()  # a user's mistake, not a failed start: TensorFlow's logs stay hidden
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
