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


ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"
FLOORS = ("core", "I/O", "jobs", "command line")  # lowest first


def _floor_table() -> dict[str, str]:
    """docs/architecture.md's module table: module name -> floor."""
    floors: dict[str, str] = {}
    for line in ARCHITECTURE.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] in FLOORS:
            for module in re.findall(r"`([\w.]+)\.py`", cells[1]):
                assert module not in floors, f"{module}.py is in the table twice"
                floors[module] = cells[0]
    return floors


def _imported_names(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every ``from reconcile... import name`` outside TYPE_CHECKING."""
    found: list[tuple[str, str]] = []

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                visit(node.body)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.split(".")[0] == "reconcile":
                    found.extend((node.module, alias.name) for alias in node.names)
            elif isinstance(node, ast.Import):
                found.extend((alias.name, "") for alias in node.names)
            elif (
                isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test)
            ) or isinstance(node, ast.Try):
                visit(node.body)

    visit(ast.parse(path.read_text()).body)
    return found


def test_the_architecture_page_lists_every_module_once_with_its_floor():
    modules = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    listed = _floor_table()
    assert set(listed) == modules, (modules - set(listed), set(listed) - modules)


def test_no_module_imports_from_a_floor_above_its_own():
    floors = _floor_table()
    offenders = []
    for module, floor in floors.items():
        for imported in _module_imports(PACKAGE / f"{module}.py"):
            name = imported.removeprefix("reconcile.")
            if FLOORS.index(floors[name]) > FLOORS.index(floor):
                offenders.append(f"{module} ({floor}) imports {name} ({floors[name]})")
            if floor == "core" and floors[name] != "core":
                offenders.append(f"{module} (core) imports {name}, which is not core")
    assert offenders == []


def test_the_command_line_imports_only_the_public_surface():
    floors = _floor_table()
    command_line = {name for name, floor in floors.items() if floor == "command line"}
    assert {"cli", "cli_options", "printed"} <= command_line
    for module in command_line:
        path = PACKAGE / f"{module}.py"
        for source, name in _imported_names(path):
            if source == "reconcile" and name:
                # a public name, or a module of the command line's own floor
                assert name in reconcile.__all__ or name in command_line, (module, name)
            elif source.startswith("reconcile."):
                assert source.removeprefix("reconcile.") in command_line, (module, source)
        # and every attribute it reads off the package is public too
        used = {
            node.attr
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "reconcile"
        }
        assert used <= set(reconcile.__all__), (module, used - set(reconcile.__all__))


def _resolves(dotted: str) -> bool:
    """Whether ``dotted`` (``module.name``, ``Class.member``, or a bare name) is a name of
    some reconcile module."""
    parts = dotted.split(".")
    modules = [
        importlib.import_module(f"reconcile.{path.stem}")
        for path in PACKAGE.glob("*.py")
        if path.stem not in {"__main__", "_process"}  # importing these runs the program
    ]
    if (PACKAGE / f"{parts[0]}.py").exists():
        roots: list[object] = [importlib.import_module(f"reconcile.{parts[0]}")]
        parts = parts[1:]
    else:
        roots = list(modules)
        # a bare member name is looked for in the modules' classes too
        if len(parts) == 1:
            roots += [
                value
                for module in modules
                for value in vars(module).values()
                if inspect.isclass(value) and value.__module__ == module.__name__
            ]
    for root in roots:
        value: object = root
        for part in parts:
            value = getattr(value, part, None)
            if value is None:
                break
        if value is not None:
            return True
    return False


def test_every_function_the_rule_tables_name_exists():
    named: list[str] = []
    in_rule_table = False
    for line in ARCHITECTURE.read_text().splitlines():
        if line.startswith("| rule"):
            in_rule_table = True
            continue
        if not line.startswith("|"):
            in_rule_table = False
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if in_rule_table and not set(cells[1]) <= {"-"}:
            named += re.findall(r"`([A-Za-z_][\w.]*)`", cells[1])
    assert len(named) > 30
    missing = [name for name in named if not _resolves(name)]
    assert missing == []


def test_public_signatures_hold_no_any():
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        if path.stem.startswith("_") or path.stem in {"cli", "cli_options", "printed"}:
            continue  # the command line's own helpers are not the library
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
