"""The one gin-parsing helper of the commands, and the configs shipped with ctx_tf.

The configs are edited in the repository's top-level `gin/` folder; a built wheel carries a
copy of it as `ctx_tf/configs/` (setup.py copies it at build time). `GIN_DIR` is that copy
in an installed package, else the checkout's `gin/` (a source checkout or an editable
install), else None. A `--gin_config` that is not a file names a shipped config
(`ctx_simclr`, `ctx_simclr.gin`, `setups/imagenet.gin`), so the configs work from any folder,
and includes inside them resolve beside the including file, then in `GIN_DIR`.
"""

import contextlib
import logging
import os
import re

import gin
import gin.resource_reader

from ctx_tf.cli import configurables
from ctx_tf.errors import UserError

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGED_GIN_DIR = os.path.join(_PACKAGE_DIR, "configs")


def _gin_dir():
    if os.path.isdir(PACKAGED_GIN_DIR):
        return PACKAGED_GIN_DIR
    # A checkout: the package sits beside setup.py and gin/ (in an installed package the
    # parent is site-packages, whose gin/ is the gin-config library).
    checkout = os.path.dirname(_PACKAGE_DIR)
    if (os.path.isfile(os.path.join(checkout, "setup.py"))
            and os.path.isdir(os.path.join(checkout, "gin"))):
        return os.path.join(checkout, "gin")
    return None


GIN_DIR = _gin_dir()
REPO_GIN_DIR = GIN_DIR  # the name the commands used before the configs were packaged


def shipped_configs():
    """The names of the top-level configs shipped with ctx_tf (`ctx`, `ctx_simclr`, ...)."""
    if GIN_DIR is None:
        return []
    return sorted(name[:-len(".gin")] for name in os.listdir(GIN_DIR) if name.endswith(".gin"))


def resolve_config(path):
    """The file `path` names: the path itself when it is a file, else the shipped config of
    that name (with or without `.gin`). Raises UserError naming the shipped configs."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return path
    if GIN_DIR is not None and not os.path.isabs(path):
        for candidate in (path, path + ".gin"):
            shipped = os.path.join(GIN_DIR, candidate)
            if os.path.isfile(shipped):
                return shipped
    names = ", ".join(shipped_configs()) or "none found"
    raise UserError(f"gin config file {path} not found (--gin_config takes a path to a .gin "
                    f"file or the name of a config shipped with ctx_tf: {names})")


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


def parse_gin(config_files, bindings, search_dirs=None, modules=None):
    """Replaces the global gin configuration with `config_files` then `bindings` (later wins);
    returns the config files parsed (`resolve_config` of each).

    Includes resolve in the working directory, beside each config file, then in `search_dirs`
    (default: `GIN_DIR`). The modules registering configurables are imported first
    (`modules`, default: every module of ctx_tf that registers one). Raises UserError naming
    the missing file, or gin's message with the file:line or binding.
    """
    bindings = [str(binding) for binding in bindings]
    config_files = [resolve_config(path) for path in config_files]
    configurables.import_configurables(modules)
    directories = [os.path.dirname(os.path.abspath(path)) for path in config_files]
    if search_dirs is None:
        search_dirs = () if GIN_DIR is None else (GIN_DIR,)
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
    return config_files


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
