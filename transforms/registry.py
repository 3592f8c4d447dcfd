"""Pass registry: every pass `pyflame-opt -p` and the PassManager can name.

In-tree passes register with `@register_pass`; out-of-tree packages can do the
same from their own module (importing it is enough: `pyflame-opt --load`) or
expose a `pyflame_rt.passes` entry point that returns a ModulePass subclass. A
target's own passes (its lowering and conversions: `Target.passes`) are
registered by the driver that chose the target (pyflame-opt).
See docs/writing-a-pass.md.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Callable

from xdsl.passes import ModulePass

_PASSES: dict[str, Callable[[], type[ModulePass]]] = {}


def register_pass(cls: type[ModulePass]) -> type[ModulePass]:
    _PASSES[cls.name] = lambda: cls
    return cls


@cache
def _builtin_passes() -> None:
    """In-tree and entry-point passes, discovered once per process."""
    from xdsl.transforms.canonicalize import CanonicalizePass
    from xdsl.transforms.common_subexpression_elimination import CommonSubexpressionElimination
    from xdsl.transforms.convert_scf_to_cf import ConvertScfToCf
    from xdsl.transforms.dead_code_elimination import DeadCodeElimination

    from pyflame_rt.transforms import graph_passes  # noqa: F401  (they register themselves)

    for cls in (CanonicalizePass, CommonSubexpressionElimination, ConvertScfToCf, DeadCodeElimination):
        _PASSES.setdefault(cls.name, (lambda c: lambda: c)(cls))
    for ep in entry_points(group="pyflame_rt.passes"):
        _PASSES.setdefault(ep.name, ep.load)


def load_pass_plugin(source: str) -> None:
    """Import a module that registers passes: a .py file path or a dotted module name."""
    if source.endswith(".py"):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"pass plugin {source} does not exist")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
    else:
        importlib.import_module(source)


def all_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    _builtin_passes()
    return dict(sorted(_PASSES.items()))
