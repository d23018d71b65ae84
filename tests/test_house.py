"""The shape of the code: a thin command line over a public surface, no import cycle,
no `Any` in the public signatures."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

import reconcile

PACKAGE = Path(reconcile.__file__).resolve().parent


def _module_imports(path: Path) -> set[str]:
    """The reconcile modules ``path`` imports (in functions too; not those imported only
    for type checking)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                visit(node.body)  # imports inside functions count too
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module == "reconcile":
                    found.update(
                        f"reconcile.{alias.name}"
                        for alias in node.names
                        if (PACKAGE / f"{alias.name}.py").exists()
                    )
                elif node.module.startswith("reconcile."):
                    found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("reconcile."))
            elif (
                isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test)
            ) or isinstance(node, ast.Try):
                visit(node.body)

    visit(tree.body)
    return found


def test_no_import_cycle_between_the_modules():
    graph = {
        f"reconcile.{path.stem}": _module_imports(path)
        for path in PACKAGE.glob("*.py")
        if path.stem != "__init__"
    }
    done: set[str] = set()

    def walk(module: str, trail: list[str]) -> None:
        if module in trail:
            cycle = " -> ".join([*trail[trail.index(module) :], module])
            raise AssertionError(f"import cycle: {cycle}")
        if module in done:
            return
        for imported in graph.get(module, ()):
            walk(imported, [*trail, module])
        done.add(module)

    for module in graph:
        walk(module, [])


def test_the_command_line_imports_only_the_public_surface():
    tree = ast.parse((PACKAGE / "cli.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("reconcile"):
            assert node.module == "reconcile", f"cli.py imports {node.module}"
            for alias in node.names:
                assert alias.name in reconcile.__all__, f"{alias.name} is not public"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                assert not alias.name.startswith("reconcile."), alias.name
    # and every attribute it reads off the package is public too
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "reconcile"
    }
    assert used
    assert used <= set(reconcile.__all__), used - set(reconcile.__all__)


def test_public_signatures_hold_no_any():
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        if path.stem.startswith("_") or path.stem == "cli":
            continue
        module = importlib.import_module(f"reconcile.{path.stem}")
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            members = [(name, value)]
            if inspect.isclass(value):
                members += [
                    (f"{name}.{member}", function)
                    for member, function in vars(value).items()
                    if not member.startswith("_") and callable(function)
                ]
            for label, function in members:
                if not callable(function) or inspect.isclass(function):
                    continue
                try:
                    signature = str(inspect.signature(function))
                except (TypeError, ValueError):
                    continue
                if re.search(r"\bAny\b", signature):
                    offenders.append(f"reconcile.{path.stem}.{label}{signature}")
    assert offenders == []


def test_every_public_name_resolves():
    for name in reconcile.__all__:
        assert getattr(reconcile, name) is not None, name


CORE = {
    "verdicts",
    "phones",
    "consent",
    "history",
    "lifecycle",
    "columns",
    "errors",
    "_text",
    "_version",
}


def test_the_core_imports_nothing_but_the_core():
    for name in CORE:
        imported = {
            module.removeprefix("reconcile.") for module in _module_imports(PACKAGE / f"{name}.py")
        }
        assert imported <= CORE, (name, imported - CORE)


def test_the_command_line_does_not_load_the_http_stack_until_it_fetches():
    import subprocess
    import sys

    probe = "import sys, reconcile.cli; print(sorted({'httpx', 'tenacity'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_data_directory_comes_from_the_option_the_variable_the_config_then_the_default(
    tmp_path,
):
    from reconcile.errors import OptionError
    from reconcile.settings import default_data_dir, resolve_data_dir

    option, variable, configured = tmp_path / "o", tmp_path / "v", tmp_path / "c"
    environment = {"RECONCILE_DATA_DIR": str(variable)}
    assert resolve_data_dir(option, configured, environment) == option
    assert resolve_data_dir(None, configured, environment) == variable
    assert resolve_data_dir(None, configured, {}) == configured
    assert resolve_data_dir(None, None, {}) == default_data_dir()
    (tmp_path / "file").write_text("")
    with pytest.raises(OptionError, match="is a file, not a folder"):
        resolve_data_dir(tmp_path / "file", None, {})
