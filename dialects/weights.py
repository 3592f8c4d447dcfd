"""The weight side table of a graph module (what MLIR keeps as `dense_resource` blobs).

`graph.constant @name` refers to an entry of the module's `WeightTable`, so the
textual IR stays small. The table travels with the module: the importer attaches
it, passes reach it with `WeightTable.of(module)` (to read weights, add folded
ones, drop unused ones), and the compiler, the PassManager and `pyflame-opt` all
hand the same object to the CPU lowering. A module parsed from .mlir text starts
with an empty table.
"""
from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import ModuleOp

_ATTACHED = "_pyflame_weights"


class WeightTable(dict[str, np.ndarray]):
    """Weight name -> contiguous numpy array."""

    @staticmethod
    def of(module: ModuleOp) -> "WeightTable":
        """The table attached to `module` (an empty one is attached if there is none)."""
        table = getattr(module, _ATTACHED, None)
        if not isinstance(table, WeightTable):
            table = WeightTable(table or {})
            table.attach(module)
        return table

    def attach(self, module: ModuleOp) -> "WeightTable":
        setattr(module, _ATTACHED, self)
        return self

    def add(self, hint: str, array: np.ndarray) -> str:
        """Store `array` under a fresh name derived from `hint`; returns the name."""
        name, n = hint, 1
        while name in self:
            name, n = f"{hint}_{n}", n + 1
        self[name] = np.ascontiguousarray(array)
        return name

    def prune(self, used: set[str]) -> int:
        """Drop the entries no `graph.constant` refers to; returns how many were dropped."""
        unused = [k for k in self if k not in used]
        for k in unused:
            del self[k]
        return len(unused)
