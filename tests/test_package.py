"""The package surface: lazy public names, one Keras import site, the layers of the imports."""

import ast
import pathlib
import re
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
