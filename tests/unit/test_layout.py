"""The layout keeps its rules: no import cycle, one boundary between the packages, short
functions, unique class names, `llmsup.*` loggers, no sibling reaching for private names.

The import graph counts every import: at module level, under ``TYPE_CHECKING`` and inside
functions, since a cycle hidden from the interpreter is still a cycle of the design. Only a
package's ``__init__`` re-exporting its own submodules is left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("supervisor", "actors")
MAX_FUNCTION_LINES = 60
LONG_REASON = "# Long because"
# What `supervisor` may import from `actors`: its public names, and the engine interface.
ACTORS_BOUNDARY = frozenset({"actors", "actors.lowlevel"})


@attrs.frozen
class Module:
    name: str
    path: Path
    is_package: bool
    tree: ast.Module


def load_modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            name = ".".join(parts)
            modules[name] = Module(name, path, is_package, ast.parse(path.read_text()))
    return modules


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.name.split(".")
    if not module.is_package:
        base.pop()
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imported_modules(module: Module) -> Iterator[tuple[str, ast.stmt]]:
    """Every module name this module imports, wherever the import statement stands."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, node)
            for alias in node.names:
                yield f"{base}.{alias.name}", node  # `from pkg import submodule`
                yield base, node


def import_graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for module in modules.values():
        for target, _node in imported_modules(module):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if not target or target == module.name:
                continue
            if module.is_package and target.startswith(module.name + "."):
                continue  # a package re-exporting its own modules
            graph[module.name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


MODULES = load_modules(REPO)


def test_the_import_graph_has_no_cycle() -> None:
    assert cycles(import_graph(MODULES)) == []


def test_the_cycle_check_sees_cycles_hidden_from_the_interpreter(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from . import a as a\nfrom . import b as b\n")
    (package / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n"
    )
    (package / "b.py").write_text("def late():\n    from .c import C\n")
    (package / "c.py").write_text("from pkg.a import A\n")
    graph = import_graph(load_modules(tmp_path, ("pkg",)))
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]  # the __init__ re-export is not one


def test_actors_never_imports_supervisor() -> None:
    offenders = [
        f"{module.path.relative_to(REPO)}:{node.lineno}"
        for module in MODULES.values()
        if module.name.startswith("actors")
        for target, node in imported_modules(module)
        if target == "supervisor" or target.startswith("supervisor.")
    ]
    assert offenders == []


def _resolved(target: str) -> str:
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target


def test_supervisor_reaches_actors_only_through_its_public_names_and_lowlevel() -> None:
    offenders = sorted(
        {
            f"{module.path.relative_to(REPO)}:{node.lineno} imports {_resolved(target)}"
            for module in MODULES.values()
            if module.name.startswith("supervisor")
            for target, node in imported_modules(module)
            if _resolved(target).startswith("actors") and _resolved(target) not in ACTORS_BOUNDARY
        }
    )
    assert offenders == []


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def test_no_function_is_over_60_lines_without_saying_why() -> None:
    too_long = []
    for module in MODULES.values():
        lines = module.path.read_text().splitlines()
        for function in _functions(module.tree):
            assert function.end_lineno is not None
            length = function.end_lineno - function.lineno + 1
            body = lines[function.lineno - 1 : function.end_lineno]
            if length > MAX_FUNCTION_LINES and not any(LONG_REASON in line for line in body):
                too_long.append(f"{module.path.relative_to(REPO)}:{function.name} ({length})")
    assert too_long == []


def test_no_two_classes_share_a_name() -> None:
    seen: dict[str, list[str]] = {}
    for module in MODULES.values():
        for node in ast.walk(module.tree):
            if isinstance(node, ast.ClassDef):
                seen.setdefault(node.name, []).append(module.name)
    assert {name: where for name, where in seen.items() if len(where) > 1} == {}


def _logger_names(module: Module) -> Iterator[tuple[str, int]]:
    for node in ast.walk(module.tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "getLogger"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value, node.lineno


def test_every_logger_is_llmsup_dot_something() -> None:
    names = [
        (name, f"{module.path.relative_to(REPO)}:{line}")
        for module in MODULES.values()
        for name, line in _logger_names(module)
    ]
    assert names, "no logger found: the check itself is broken"
    assert [
        where for name, where in names if name != "llmsup" and not name.startswith("llmsup.")
    ] == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_imports_a_siblings_private_name(package: str) -> None:
    offenders = [
        f"{module.path.relative_to(REPO)}:{node.lineno} {alias.name}"
        for module in MODULES.values()
        if module.name.split(".")[0] == package
        for node in ast.walk(module.tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name.startswith("_")
        and not alias.name.startswith("__")
        and f"{_absolute(module, node)}.{alias.name}" not in MODULES  # a private module is fine
    ]
    assert offenders == []
