"""The registry of gin configurables: the modules of ctx_tf that register one, found by
reading the package's sources, so that a new configurable module needs no list.

A config file may name any configurable of ctx_tf (`Trainer.num_updates`,
`CrossTransformerLearner.query_dim`, `compute.policy`, ...); gin knows a name only once the
module registering it is imported. `configurable_modules` finds those modules by their source
(a module-level `@gin.configurable` / `@gin.register` decorator or a
`gin.external_configurable(...)` / `gin.configurable(...)` call) without importing anything,
and `import_configurables` imports them when a config is parsed, never when this module is.
"""

import ast
import functools
import importlib
import os

PACKAGE = "ctx_tf"
_REGISTRATIONS = ("configurable", "register", "external_configurable")


def _is_registration(node):
    """True for `gin.configurable`, `gin.configurable(...)`, `gin.register(...)`, ..."""
    if isinstance(node, ast.Call):
        node = node.func
    return (isinstance(node, ast.Attribute) and node.attr in _REGISTRATIONS
            and isinstance(node.value, ast.Name) and node.value.id == "gin")


def registers_configurables(source):
    """True when the module `source` registers a gin configurable at its top level."""
    if "gin" not in source:
        return False
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            if any(_is_registration(d) for d in node.decorator_list):
                return True
        elif isinstance(node, (ast.Expr, ast.Assign)) and _is_registration(node.value):
            return True
    return False


@functools.lru_cache(maxsize=None)
def configurable_modules(package=PACKAGE, root=None):
    """The dotted names of the modules of `package` (its folder, or `root`) that register
    gin configurables, sorted."""
    if root is None:
        root = os.path.dirname(importlib.import_module(package).__file__)
    found = []
    for directory, subdirectories, filenames in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories
                                   if d.isidentifier() and d != "__pycache__")
        for filename in sorted(filenames):
            name, extension = os.path.splitext(filename)
            if extension != ".py" or name == "__main__":
                continue
            path = os.path.join(directory, filename)
            with open(path, encoding="utf-8") as f:
                if not registers_configurables(f.read()):
                    continue
            parts = os.path.relpath(path, root)[:-len(".py")].split(os.sep)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found.append(".".join([package] + parts))
    return tuple(sorted(found))


def import_configurables(modules=None):
    """Imports `modules` (default: `configurable_modules()`), registering their gin
    configurables."""
    for name in configurable_modules() if modules is None else modules:
        importlib.import_module(name)
