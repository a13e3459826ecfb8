"""Subprocess scripts of the tests: the two-replica preamble and running a script that prints
its result.

A check that needs two replicas on a CPU-only machine runs in a subprocess whose script starts
with `TWO_CPUS` (two logical CPU devices, set before TensorFlow initializes its devices);
`TWO_CPUS_LAUNCHER` runs a module (`python -m` style) after that preamble. `run_script` starts
a script with the repository root, a directory and one more argument; `script_result` reads
the JSON of its last `RESULT ` line.
"""

import json
import subprocess
import sys
import textwrap

from tests.conftest import REPO_ROOT


TWO_CPUS = textwrap.dedent("""
    import tensorflow as tf
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
""")

# `python <launcher> <module> <args>` runs `python -m <module> <args>` on two logical CPUs.
TWO_CPUS_LAUNCHER = TWO_CPUS + textwrap.dedent("""
    import runpy, sys
    module = sys.argv[1]
    sys.argv = [module] + sys.argv[2:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
""")


def run_script(script, tmp_path, extra=None, env=None):
    """Starts `python <tmp_path>/script.py <repository root> <tmp_path> <extra or tmp_path>`;
    returns the process (read it with `script_result`)."""
    path = tmp_path / "script.py"
    path.write_text(script)
    return subprocess.Popen(
        [sys.executable, str(path), str(REPO_ROOT), str(tmp_path), str(extra or tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def script_result(process, timeout=240):
    """The JSON after `RESULT ` on the last such line of a script that exited with 0."""
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr[-4000:]
    line = [l for l in stdout.splitlines() if l.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])
