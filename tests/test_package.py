"""The package surface: lazy public names, one Keras import site, the layers of the imports."""

import ast
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

import ctx_tf

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.compat
def test_public_names_resolve():
    for name in ctx_tf.__all__:
        assert getattr(ctx_tf, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        ctx_tf.nothing  # noqa: B018


def test_import_is_cheap():
    code = "import sys, ctx_tf; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_keras_is_imported_at_one_site_only():
    """Keras 2 comes from tf_keras through ctx_tf/keras.py; no tf.keras, no Keras 3, no addons."""
    offenders = []
    for path in (ROOT / "ctx_tf").rglob("*.py"):
        text = path.read_text()
        rel = path.relative_to(ROOT)
        if str(rel) != "ctx_tf/keras.py" and re.search(r"^\s*(import|from)\s+tf_keras\b", text,
                                                       re.M):
            offenders.append(f"{rel}: imports tf_keras directly")
        if re.search(r"\btf\.keras\.\w|^\s*import keras\b|^\s*from keras\b", text, re.M):
            offenders.append(f"{rel}: uses tf.keras or Keras 3")
        if "tensorflow_addons" in text or "gin.tf" in text:
            offenders.append(f"{rel}: uses tensorflow_addons or gin.tf")
    assert not offenders, offenders


# The layers of the design (what may import what); commands may import anything.
LAYERS_ALLOWED = {
    "shared": {"shared"},
    "data": {"data", "shared"},
    "models": {"models", "shared"},
    "learners": {"learners", "models", "data", "shared"},  # the learner knows episodes
    "evaluation": {"evaluation", "learners", "models", "data", "shared"},
    "training": {"training", "evaluation", "learners", "models", "data", "shared"},
}
COMMANDS = {"ctx_tf.train", "ctx_tf.evaluate", "ctx_tf.visualize"}


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module):
    parts = module.split(".")
    if module in COMMANDS:
        return "commands"
    if len(parts) > 1 and parts[1] in ("data", "models", "learners", "evaluation", "training"):
        return parts[1]
    return "shared"  # the package, cli/, files, checkpoints, distribute, seeds, ...


def _imports(path, modules, top_level_only):
    """The ctx_tf modules `path` imports (`from pkg import name` resolves to the module
    pkg.name when there is one)."""
    tree = ast.parse(path.read_text())
    nodes = []
    for node in tree.body if top_level_only else ast.walk(tree):
        if top_level_only and isinstance(node, (ast.If, ast.Try)):
            nodes.extend(n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom)))
        else:
            nodes.append(node)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if name in modules else node.module)
    return {name for name in found if name in modules}


def _import_graph(top_level_only):
    paths = {_module_name(p): p for p in (ROOT / "ctx_tf").rglob("*.py")}
    return {m: _imports(p, paths, top_level_only) for m, p in paths.items()}


def test_imports_follow_the_layers():
    """Nothing imports upward (DESIGN.md 'Layers'): evaluation never imports training, the
    models never the data, the data layer nothing above it, the shared layer nothing else."""
    graph = _import_graph(top_level_only=False)
    assert "ctx_tf.evaluation.protocol" in graph and "ctx_tf.training.loop" in graph
    upward = sorted(f"{m} ({_layer(m)}) imports {t} ({_layer(t)})"
                    for m, targets in graph.items() if _layer(m) != "commands"
                    for t in targets if _layer(t) not in LAYERS_ALLOWED[_layer(m)])
    assert not upward, upward


def test_no_import_cycle():
    graph = _import_graph(top_level_only=True)
    state, stack, cycles = {}, [], []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles, cycles


def test_the_layer_test_sees_an_upward_import(tmp_path):
    # The check itself: a data module importing the trainer is reported.
    fake = tmp_path / "ctx_tf" / "data" / "x.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from ctx_tf.training import loop\n")
    modules = {"ctx_tf.training.loop": None, "ctx_tf.training": None}
    assert _imports(fake, modules, top_level_only=False) == {"ctx_tf.training.loop"}
    assert _layer("ctx_tf.data.x") == "data"
    assert "training" not in LAYERS_ALLOWED["data"]


INSTALLED_SCRIPT = """
import json, os, sys
import gin
import ctx_tf
from ctx_tf import cli

parsed = {}
for config in ("ctx_simclr", "demo"):  # by name, from a folder outside the repository
    cli.parse_gin([config], [])
    parsed[config] = gin.query_parameter("benchmark.train_datasets")
os.chdir(sys.argv[1])  # the repository root: the path the README gives
cli.parse_gin(["gin/ctx_simclr.gin"], [])
parsed["gin/ctx_simclr.gin"] = gin.query_parameter("benchmark.train_datasets")
print(json.dumps(dict(package=ctx_tf.__file__, gin_dir=cli.GIN_DIR,
                      gin_library=os.path.dirname(gin.__file__), parsed=parsed)))
"""


@pytest.mark.slow
def test_a_built_wheel_ships_the_configs(tmp_path):
    """`pip install .` (not -e): the configs and their includes parse by name from any folder
    and by path from the repository root; the config folder is the package's own."""
    source = tmp_path / "source"  # a copy: the build writes build/ and *.egg-info beside it
    source.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md", "MANIFEST.in"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "configs")
    shutil.copytree(ROOT / "ctx_tf", source / "ctx_tf", ignore=ignore)
    shutil.copytree(ROOT / "gin", source / "gin")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["wheel", "--no-deps", "-w", str(tmp_path / "wheel"), str(source)],
                   check=True, capture_output=True, timeout=600)
    [wheel] = (tmp_path / "wheel").glob("ctx_tf-*.whl")
    target = tmp_path / "target"
    subprocess.run(pip + ["install", "--no-deps", "--no-index", "--target", str(target),
                          str(wheel)], check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(target)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.run([sys.executable, "-c", INSTALLED_SCRIPT, str(ROOT)], cwd=elsewhere,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["package"].startswith(str(target))
    assert out["gin_dir"] == str(target / "ctx_tf" / "configs")
    assert not out["gin_dir"].startswith(out["gin_library"])
    assert out["parsed"] == {"ctx_simclr": "ilsvrc_2012", "demo": "demo_glyphs",
                             "gin/ctx_simclr.gin": "ilsvrc_2012"}
