"""ctx_tf.cli: the error contract of the commands and their quiet start."""

import os
import re
import subprocess
import sys
import textwrap

import pytest

from ctx_tf import cli
from ctx_tf.cli import quiet_start

TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} ", re.MULTILINE)


def run_script(tmp_path, source, args=(), **env):
    script = tmp_path / "command.py"
    script.write_text(textwrap.dedent(source))
    environ = {k: v for k, v in os.environ.items()
               if k not in ("CTX_TF_VERBOSE", "TF_CPP_MIN_LOG_LEVEL")}
    environ.update(env)
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=environ)


# ---------------------------------------------------------------------------- error contract

def run_command(tmp_path, args, **env):
    return run_script(tmp_path, COMMAND, ["--needed=yes", *args], **env)


COMMAND = """
    import sys
    from absl import app, flags
    import gin
    from ctx_tf import cli
    from ctx_tf.errors import UserError

    flags.DEFINE_string("mode", "ok", "What to do.")
    flags.DEFINE_string("path", None, "A path the user names.")
    flags.DEFINE_integer("n", 1, "A number.")
    flags.DEFINE_string("needed", None, "A required flag.")
    flags.DEFINE_multi_string("gin_config", [], "Gin files.")
    flags.DEFINE_multi_string("gin_bindings", [], "Gin bindings.")
    flags.mark_flag_as_required("needed")

    @gin.configurable("cli_cmd_thing")
    def thing(a=0):
        return a

    def main(argv):
        mode = flags.FLAGS.mode
        if mode == "user":
            raise UserError("records file /data/x.tfrecords is truncated;\\nrewrite it")
        if mode == "bug":
            return 1 // 0
        if mode == "usage":
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        if mode == "interrupt":
            raise KeyboardInterrupt
        if mode == "open":
            open(flags.FLAGS.path).close()
        if mode == "open_inside":
            open(flags.FLAGS.path + "/inner.txt").close()
        if mode == "gin":
            cli.parse_gin(flags.FLAGS.gin_config, flags.FLAGS.gin_bindings, modules=())
            print("a =", thing())
        print("ok")

    if __name__ == "__main__":
        cli.run("demo", main, tensorflow=False)
"""

ONE_LINE_CASES = {
    "user error": (["--mode=user"], "records file /data/x.tfrecords is truncated; rewrite it"),
    "usage error": (["--mode=usage", "extra"], "unexpected arguments: ['extra']"),
    "unknown flag": (["--nmber=3"], "Unknown command line flag 'nmber'"),
    "bad flag value": (["--n=three"], "flag --n=three: invalid literal for int()"),
    "missing required flag": (None, "Flag --needed must have a value other than None"),
    "missing path": (["--mode=open", "--path=missing/file.txt"],
                     "--path=missing/file.txt: No such file or directory"),
    "path under a missing folder": (
        ["--mode=open_inside", "--path=nowhere"],
        "--path=nowhere: No such file or directory (nowhere/inner.txt)"),
    "gin binding": (["--mode=gin", "--gin_bindings=cli_cmd_thing.b = 2"],
                    "gin configuration: Configurable 'cli_cmd_thing' doesn't have a parameter "
                    "named 'b', in the --gin_bindings (cli_cmd_thing.b = 2)"),
    "gin file": (["--mode=gin", "--gin_config=absent.gin"], "gin config file absent.gin not found"),
}


@pytest.mark.parametrize("case", sorted(ONE_LINE_CASES))
def test_user_mistakes_end_with_one_line_and_exit_code_2(tmp_path, case):
    args, expected = ONE_LINE_CASES[case]
    proc = run_command(tmp_path, args) if args else run_script(tmp_path, COMMAND)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ctx_tf.demo: error: "), proc.stderr
    assert expected in lines[0]


def test_the_happy_path_and_gin_bindings_work(tmp_path):
    proc = run_command(tmp_path, ["--mode=gin", "--gin_bindings=cli_cmd_thing.a = 7"])
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "a = 7\nok\n", "")


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_verbose_adds_the_traceback(tmp_path, how):
    args, env = (["--mode=user", "--verbose"], {}) if how == "flag" else (
        ["--mode=user"], {"CTX_TF_VERBOSE": "1"})
    proc = run_command(tmp_path, args, **env)
    assert proc.returncode == 2
    assert "Traceback (most recent call last)" in proc.stderr
    assert 'raise UserError("records file' in proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        "ctx_tf.demo: error: records file /data/x.tfrecords is truncated; rewrite it")


@pytest.mark.parametrize("args, culprit", [
    (["--mode=bug"], "ZeroDivisionError: integer division or modulo by zero"),
    # The folder the user named exists: a file missing inside it is the program's business.
    (["--mode=open_inside", "--path=."], "FileNotFoundError"),
])
def test_programming_errors_raise_with_their_traceback(tmp_path, args, culprit):
    proc = run_command(tmp_path, args)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr and culprit in proc.stderr
    assert "ctx_tf.demo: error" not in proc.stderr


def test_keyboard_interrupt_is_one_line_and_exit_code_130(tmp_path):
    proc = run_command(tmp_path, ["--mode=interrupt"])
    assert (proc.returncode, proc.stderr) == (130, "ctx_tf.demo: interrupted\n")


def test_one_line_joins_the_lines_of_a_message():
    assert cli.one_line("first\n  second \n\nthird") == "first second third"


def test_verbose_follows_the_environment(monkeypatch):
    monkeypatch.setenv(cli.VERBOSE_ENV, "1")
    assert cli.verbose()
    monkeypatch.setenv(cli.VERBOSE_ENV, "0")
    monkeypatch.setattr(sys, "argv", ["prog"])
    assert not cli.verbose()


# ------------------------------------------------------------------------------- quiet start

TF_COMMAND = """
    import warnings
    from absl import logging
    from ctx_tf import cli

    def main(argv):
        import tensorflow as tf

        logging.info("absl info chatter")
        warnings.warn_explicit("a TensorFlow deprecation", FutureWarning, "deprecation.py", 1,
                               module="tensorflow.python.util.deprecation")
        print("ok" if int(tf.constant(1) + 1) == 2 else "wrong")

    if __name__ == "__main__":
        cli.run("demo", main)
"""


def test_tensorflow_starts_silently(tmp_path):
    proc = run_script(tmp_path, TF_COMMAND)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "ok\n", "")


TOP_IMPORT_COMMAND = """
    from ctx_tf.cli import quiet_start

    quiet_start.begin_if_main(__name__)

    import tensorflow as tf
    from ctx_tf import cli

    def main(argv):
        print("ok" if int(tf.constant(1) + 1) == 2 else "wrong")

    if __name__ == "__main__":
        cli.run("demo", main)
"""


def test_a_command_importing_tensorflow_at_its_top_starts_silently(tmp_path):
    # The commands' own first line begins the capture; importing ctx_tf begins nothing.
    proc = run_script(tmp_path, TOP_IMPORT_COMMAND)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "ok\n", "")


def test_importing_ctx_tf_changes_no_process_state():
    # As under `python -m ctx_tf.<command>`, where argv[0] is "-m" while the package loads.
    code = textwrap.dedent("""
        import atexit, os, sys
        import absl.app, gin  # their own import-time state is theirs
        sys.argv[:] = ["-m"]
        before = (os.fstat(2).st_ino, dict(os.environ), atexit._ncallbacks())
        import ctx_tf, ctx_tf.cli
        after = (os.fstat(2).st_ino, dict(os.environ), atexit._ncallbacks())
        print(before == after)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.strip() == "True", proc.stderr[-2000:]


def test_verbose_shows_tensorflow_start_up_logs(tmp_path):
    proc = run_script(tmp_path, TF_COMMAND, CTX_TF_VERBOSE="1")
    assert (proc.returncode, proc.stdout) == (0, "ok\n")
    assert TF_LOG_LINE.search(proc.stderr), proc.stderr  # C++ logs of the import
    assert "absl info chatter" in proc.stderr and "a TensorFlow deprecation" in proc.stderr


def test_a_tf_log_level_the_user_set_is_respected(tmp_path):
    proc = run_script(tmp_path, TF_COMMAND, TF_CPP_MIN_LOG_LEVEL="0")
    assert (proc.returncode, proc.stdout) == (0, "ok\n")
    assert re.search(r"^I\d{4} ", proc.stderr, re.MULTILINE), proc.stderr


def test_what_was_captured_is_replayed_when_the_captured_block_fails(tmp_path):
    # The same file-descriptor capture quiet_tensorflow puts around TensorFlow's import; the
    # lines are written to fd 2 as C++ does, bypassing sys.stderr.
    proc = run_script(tmp_path, """
        import os
        from ctx_tf import cli

        with cli.captured_stderr():
            os.write(2, b"E0000 00:00:1.0 1 cuda_platform.cc:52] failed call to cuInit\\n")
            raise RuntimeError("failed while TensorFlow started")
    """)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0] == "E0000 00:00:1.0 1 cuda_platform.cc:52] failed call to cuInit"
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "RuntimeError: failed while TensorFlow started"


def test_captured_stderr_keeps_the_text_of_a_quiet_block(capfd):
    with cli.captured_stderr() as capture:
        os.write(2, b"C-level line\n")
    os.write(2, b"after\n")
    assert capture.text == "C-level line\n"
    assert capfd.readouterr().err == "after\n"


def test_replayed_lines_follow_the_users_tf_log_level():
    text = ("WARNING: All log messages before absl::InitializeLog() is called are written to "
            "STDERR\n"
            "I0000 00:00:1.0 1 port.cc:153] oneDNN custom operations are on.\n"
            "I0000 00:00:1.0 1 cpu_feature_guard.cc:227] This TensorFlow binary is optimized\n"
            "To enable the following instructions: AVX2\n"
            "W0000 00:00:1.0 1 x.cc:1] a warning\n"
            "E0000 00:00:1.0 1 cuda_platform.cc:52] failed call to cuInit\n")
    lines = text.splitlines(keepends=True)
    assert quiet_start.lines_at_or_above(text, 0) == text
    assert quiet_start.lines_at_or_above(text, 1) == lines[0] + lines[4] + lines[5]
    assert quiet_start.lines_at_or_above(text, 2) == lines[5]
    assert quiet_start.lines_at_or_above(text, 3) == ""
