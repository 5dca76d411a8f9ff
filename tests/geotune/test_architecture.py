"""The layers of the README's architecture, checked on the tree as it is (not on a list kept by hand)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARIES = ("finetune", "selection", "eval")
APP = ("geotune", "train")  # the app package and its entry script


def test_import_linter_contracts_hold():
    """``lint-imports`` (the contracts in pyproject.toml) passes: layers, forbidden imports, no circles.

    In a subprocess: import-linter's CLI reconfigures logging (``dictConfig``), which would silence the
    loggers of every later test in this process.
    """
    script = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(script)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def _python_files(package: str):
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", LIBRARIES)
def test_library_packages_have_no_command_line_halves(package):
    """Commands live in geotune/commands/: no library module defines the CLI interface."""
    offenders = []
    for path in _python_files(package):
        tree = ast.parse(path.read_text())
        names = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        if {"add_arguments", "run"} <= names:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def _imports_by_name(node) -> bool:
    """``pytest.importorskip("x")`` or ``importlib.import_module("x")`` with the name written out."""
    name = getattr(node, "func", None)
    name = getattr(name, "attr", None) or getattr(name, "id", None)
    return (isinstance(node, ast.Call) and name in ("importorskip", "import_module") and bool(node.args)
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str))


def _modules_imported(node) -> list[str]:
    """The modules ``node`` imports: an import statement, or ``importorskip`` / ``import_module`` by name."""
    return ([a.name for a in node.names] if isinstance(node, ast.Import)
            else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0
            else [node.args[0].value] if _imports_by_name(node) else [])


def _imports_of(paths, packages) -> list[str]:
    """``file:line`` of every import of one of ``packages`` in ``paths``, function-local ones and
    ``importorskip`` / ``import_module`` by name included."""
    offenders = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if any(m.split(".")[0] in packages for m in _modules_imported(node)):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return offenders


@pytest.mark.parametrize("package", LIBRARIES)
def test_library_packages_never_import_the_app(package):
    """No import of ``geotune`` anywhere in a library package, function-local ones included."""
    assert _imports_of(_python_files(package), APP) == []


# What the tests of each library may not import: the app, and the layers above or beside the package.
ABOVE = {"finetune": APP + ("selection", "eval"), "selection": APP + ("eval",), "eval": APP + ("selection",)}


@pytest.mark.parametrize("package", LIBRARIES)
def test_library_tests_import_nothing_above_their_layer(package):
    """tests/finetune, tests/selection, tests/eval build their recipes from their own layer's sections
    (tests/recipe_sections.py) and import neither the app nor a package above or beside theirs; a test that
    runs the whole recipe (run_experiment, train.py, a command) is the app's and lives in tests/geotune/."""
    assert _imports_of(_python_files(f"tests/{package}"), ABOVE[package]) == []


def app_fixtures(conftest: Path) -> set[str]:
    """Names of the fixtures in ``conftest`` whose body imports the app (function-local imports included)."""
    tree = ast.parse(conftest.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and any("fixture" in ast.unparse(d) for d in node.decorator_list):
            if any(m.split(".")[0] in APP for inner in ast.walk(node) for m in _modules_imported(inner)):
                names.add(node.name)
    return names


def _fixture_users(folder: str, fixtures: set[str]) -> list[str]:
    users = []
    for path in _python_files(folder):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
                used = fixtures & {a.arg for a in node.args.args}
                users += [f"{path.relative_to(ROOT)}:{node.lineno} {sorted(used)}"] if used else []
    return users


def test_root_fixtures_that_build_app_data_serve_only_the_app_tests():
    """A fixture of tests/conftest.py that imports geotune (SynthRS data) would carry the app into a library
    test without an import the test above sees."""
    fixtures = app_fixtures(ROOT / "tests" / "conftest.py")
    assert "synth_rsitmd" in fixtures
    assert [u for package in LIBRARIES for u in _fixture_users(f"tests/{package}", fixtures)] == []


def test_shared_test_helpers_import_only_the_base():
    """The helpers beside tests/conftest.py serve every test folder, so they import only finetune."""
    helpers = [p for p in sorted((ROOT / "tests").glob("*.py")) if p.name != "conftest.py"]
    helpers += sorted((ROOT / "tests" / "remote_failures").rglob("*.py"))
    assert _imports_of(helpers, APP + ("selection", "eval")) == []


def test_every_command_is_one_module_under_geotune_commands():
    from geotune.cli import COMMANDS

    for name, (module, _) in COMMANDS.items():
        assert module == f"geotune.commands.{name.replace('-', '_')}"
        assert (ROOT / "geotune" / "commands" / f"{name.replace('-', '_')}.py").exists()


def test_the_experiment_reads_in_under_150_lines():
    assert len((ROOT / "geotune" / "experiment.py").read_text().splitlines()) < 150


def test_test_file_names_are_unique():
    """The tests are folders without __init__.py (they mirror the packages and must not shadow them), so
    pytest imports each file by its base name: two files with one name fail collection."""
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
