"""The package tree is acyclic: no pyflame_rt module imports itself through others at import time.

The graph is read from the source with `ast`: an edge for every import a module executes when it
is loaded (its top level, class bodies, `if` / `try` / `with` blocks; not function bodies, which
import late, and not `if TYPE_CHECKING:` blocks, which never run). `from p import name` is an edge
to the submodule `p.name` when there is one, else to `p`.
"""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
import tomllib

ROOT = "pyflame_rt"
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def package_modules() -> dict[str, Path]:
    """Module name -> source file, for every module of the packages pyproject.toml installs (their
    directories are mapped there, so each is found through the import system)."""
    packages = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["packages"]
    modules = {}
    for package in packages:
        for location in importlib.util.find_spec(package).submodule_search_locations:
            for path in sorted(Path(location).glob("*.py")):
                modules[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING" or \
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def executed_imports(tree: ast.AST, late: bool = False):
    """The import statements a module runs when it is loaded, or (late) ever."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and not late:
            continue
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from (i for n in node.orelse for i in executed_imports(ast.Module([n], []), late))
        else:
            yield from executed_imports(node, late)


def imported_modules(name: str, path: Path, modules: dict[str, Path], late: bool = False) -> set[str]:
    """The package's modules `name` imports at load time, or (late) anywhere."""
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    out = set()
    for node in executed_imports(ast.parse(path.read_text(), str(path)), late):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
            continue
        base = node.module or ""
        if node.level:
            parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            base = f"{parent}.{base}" if base else parent
        out |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
    return {m for m in out if m in modules and m != name}


def import_graph(late: bool = False) -> dict[str, set[str]]:
    modules = package_modules()
    return {name: imported_modules(name, path, modules, late) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as one cycle
    through its first module, so the failure names the imports to change."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_through(min(c), graph, c) for c in components]


def _cycle_through(start: str, graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest import path from `start` back to itself inside its component."""
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for w in sorted(graph[path[-1]] & component):
            if w == start:
                return path + [start]
            if w not in seen:
                seen.add(w)
                paths.append(path + [w])
    raise AssertionError(f"{start} is not on a cycle")


def test_the_package_has_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_graph_level_code_imports_no_target():
    """Graph passes and dialects learn what a target supports from the target object they are
    handed (pyflame_rt.targets.target is the interface they may name), never from a target's code."""
    graph = import_graph(late=True)
    offenders = {m: sorted(d for d in deps if d.startswith(f"{ROOT}.targets.") and d != f"{ROOT}.targets.target")
                 for m, deps in graph.items() if m.startswith((f"{ROOT}.transforms", f"{ROOT}.dialects"))}
    assert not {m: d for m, d in offenders.items() if d}


@pytest.mark.parametrize("source, late, expected", [
    ("import a.b\nfrom c import d", False, {"a.b", "c.d"}),
    ("def f():\n    import late", False, set()),
    ("def f():\n    import late", True, {"late"}),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import hint\nelse:\n    import real", True, {"real"}),
    ("class C:\n    import in_class\ntry:\n    import tried\nexcept ImportError:\n    pass", False,
     {"in_class", "tried"}),
])
def test_executed_imports_are_what_runs(source, late, expected, tmp_path):
    path = tmp_path / "m.py"
    path.write_text(source)
    modules = {m: path for m in ("m", "a.b", "c", "c.d", "late", "hint", "real", "in_class", "tried")}
    assert imported_modules("m", path, modules, late) == expected


def test_a_cycle_is_found_and_named():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
