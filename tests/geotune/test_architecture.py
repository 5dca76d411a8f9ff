"""The layers of the README's architecture, checked on the tree as it is (not on a list kept by hand)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARIES = ("finetune", "selection", "eval")


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


@pytest.mark.parametrize("package", LIBRARIES)
def test_library_packages_never_import_the_app(package):
    """No import of ``geotune`` anywhere in a library package, function-local ones included."""
    offenders = []
    for path in _python_files(package):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            if any(m == "geotune" or m.startswith("geotune.") for m in modules):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


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
