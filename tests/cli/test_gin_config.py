"""ctx_tf.cli: the one gin-parsing helper, the shipped configs and the configurable registry."""

import logging
import pathlib
import textwrap

import gin
import pytest

from ctx_tf import cli
from ctx_tf.errors import UserError
from tests.conftest import REPO_ROOT


@gin.configurable("cli_test_thing")
def thing(a=0, b=0, c=0):
    return a, b, c


pytestmark = pytest.mark.usefixtures("clean_gin")


# --------------------------------------------------------------------------------------- gin

def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def gin_errors():
    """The gin log records at ERROR level while parsing (gin logs through the root logger)."""
    records = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append
    root = logging.getLogger()
    root.addHandler(handler)
    yield records
    root.removeHandler(handler)


def test_includes_resolve_beside_the_file_then_in_the_search_dirs(tmp_path, monkeypatch,
                                                                   gin_errors):
    shared = tmp_path / "repo_gin"
    write(shared / "setups" / "common.gin", "cli_test_thing.a = 1\ncli_test_thing.b = 1\n")
    config = write(tmp_path / "mine" / "main.gin", """
        include 'setups/common.gin'
        include 'setups/local.gin'
        cli_test_thing.b = 2
    """)
    write(tmp_path / "mine" / "setups" / "local.gin", "cli_test_thing.c = 3\n")
    monkeypatch.chdir(tmp_path)  # the includes are found in neither the working directory...
    prefixes = list(gin.config._LOCATION_PREFIXES)
    cli.parse_gin([str(config)], ["cli_test_thing.c = 4"], search_dirs=[shared], modules=())
    assert thing() == (1, 2, 4)  # later files and bindings win
    assert gin.config._LOCATION_PREFIXES == prefixes  # the search path is this parse's only
    assert gin_errors == []  # ...nor as Python packages: gin's probe logs are dropped


def test_a_config_files_own_folder_wins_over_an_earlier_parse(tmp_path):
    for name, value in (("first", 1), ("second", 2)):
        write(tmp_path / name / "common.gin", f"cli_test_thing.a = {value}\n")
        write(tmp_path / name / "main.gin", "include 'common.gin'\n")
    for name, value in (("first", 1), ("second", 2)):
        cli.parse_gin([str(tmp_path / name / "main.gin")], [], search_dirs=(), modules=())
        assert thing() == (value, 0, 0)


def gin_error(files, bindings=()):
    with pytest.raises(UserError) as info:
        cli.parse_gin([str(f) for f in files], list(bindings), search_dirs=(), modules=())
    return str(info.value)


def test_gin_mistakes_name_the_binding_and_the_file_line(tmp_path, gin_errors):
    typo = write(tmp_path / "typo.gin", "cli_test_thing.a = 1\ncli_test_thing.bb = 2\n")
    assert gin_error([typo]) == (
        "gin configuration: Configurable 'cli_test_thing' doesn't have a parameter named 'bb', "
        f"at {typo}:2 (cli_test_thing.bb = 2)")
    assert gin_error([], ["cli_tset_thing.a = 1"]) == (
        "gin configuration: No configurable matching 'cli_tset_thing', in the --gin_bindings "
        "(cli_tset_thing.a = 1)")
    syntax = write(tmp_path / "syntax.gin", "cli_test_thing.a = 1\ncli_test_thing.b = = 2\n")
    assert gin_error([syntax]) == (
        f"gin configuration: syntax error at {syntax}:2: Unable to parse value "
        "(cli_test_thing.b = = 2)")
    outer = write(tmp_path / "outer.gin", "include 'typo.gin'\n")
    assert gin_error([outer]).endswith(
        f"at {typo}:2 (cli_test_thing.bb = 2), at {outer}:1 (include 'typo.gin')")
    assert gin_errors == []


def test_missing_config_files_and_includes_are_named(tmp_path, gin_errors):
    assert gin_error([tmp_path / "absent.gin"]).startswith(
        f"gin config file {tmp_path / 'absent.gin'} not found")
    broken = write(tmp_path / "broken.gin", "include 'setups/absent.gin'\n")
    message = gin_error([broken])
    assert message.startswith("gin configuration: Unable to open file: setups/absent.gin")
    assert str(tmp_path) in message  # the folders searched
    assert message.endswith(f"at {broken}:1 (include 'setups/absent.gin')")
    assert gin_errors == []


@pytest.mark.parametrize("name, train_datasets", [("demo.gin", "demo_glyphs"),
                                                  ("ctx.gin", "ilsvrc_2012"),
                                                  ("ctx_simclr", "ilsvrc_2012")])
def test_the_repository_gin_files_parse_without_error_logs(tmp_path, monkeypatch, gin_errors,
                                                           name, train_datasets):
    monkeypatch.chdir(tmp_path)
    # A path into the repository's gin/, or the name of a shipped config.
    config = str(REPO_ROOT / "gin" / name) if name.endswith(".gin") else name
    cli.parse_gin([config], [])
    assert gin.query_parameter("benchmark.train_datasets") == train_datasets
    assert gin_errors == []


def test_a_shipped_config_is_found_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    gin_dir = pathlib.Path(cli.GIN_DIR)
    assert (gin_dir / "ctx_simclr.gin").is_file() and (gin_dir / "setups").is_dir()
    for name in ("ctx_simclr", "ctx_simclr.gin"):
        assert cli.resolve_config(name) == str(gin_dir / "ctx_simclr.gin")
    assert cli.resolve_config("setups/imagenet") == str(gin_dir / "setups" / "imagenet.gin")
    (tmp_path / "ctx_simclr.gin").write_text("")  # a file of that name in the folder wins
    assert cli.resolve_config("ctx_simclr.gin") == "ctx_simclr.gin"
    with pytest.raises(UserError, match=r"gin config file ctx_simlcr not found .*ctx_simclr"):
        cli.resolve_config("ctx_simlcr")


def test_the_config_folder_is_ours_not_the_gin_librarys():
    gin_library = pathlib.Path(gin.__file__).resolve().parent
    gin_dir = pathlib.Path(cli.GIN_DIR).resolve()
    assert gin_dir != gin_library and (gin_dir / "demo.gin").is_file()


def test_every_configurable_module_is_found_without_a_list(tmp_path):
    modules = cli.configurable_modules()
    for name in ("ctx_tf.training.options", "ctx_tf.data.sampling.config",
                 "ctx_tf.data.reading.decoder",
                 "ctx_tf.learners", "ctx_tf.compute", "ctx_tf.models.backbones"):
        assert name in modules
    assert "ctx_tf.cli.configurables" not in modules  # names gin.configurable in text only
    # A new module registering a configurable is found by its source alone.
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "sub" / "new.py").write_text(
        "import gin\n\n\n@gin.configurable\ndef new_thing(x=1):\n    return x\n")
    (package / "sub" / "external.py").write_text(
        "import gin\nimport math\n\ngin.external_configurable(math.floor, 'floor')\n")
    (package / "plain.py").write_text('"""Mentions @gin.configurable in prose only."""\n')
    assert cli.configurable_modules("pkg", str(package)) == ("pkg.sub.external", "pkg.sub.new")
