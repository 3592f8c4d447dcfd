"""What the graph-level passes share: statistics, the weight table, the greedy driver.

A `GraphPass` is an ordinary xDSL `ModulePass` (so `pyflame-opt -p` runs it), whose
work is done by `rewrite(module, weights, stats)`: the PassManager calls that
directly to collect the pass's statistics, `apply` calls it with throwaway ones.
Node counts (ops other than `graph.constant` and the terminator) are taken by the
PassManager before and after every pass, whatever kind of pass it is.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, fields
from typing import Iterable

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import GreedyRewritePatternApplier, PatternRewriteWalker, RewritePattern

from pyflame_rt.dialects import graph
from pyflame_rt.dialects.weights import WeightTable


@dataclass
class PassStats:
    """What a pass (or a whole pipeline) did to the graph.

    nodes_fused counts the nodes that disappeared into a fused op (MatMul+Add ->
    Gemm fuses 2); constants_folded counts nodes replaced by constants;
    initializers_removed counts weight-table entries dropped.
    """

    nodes_before: int = 0
    nodes_after: int = 0
    nodes_removed: int = 0
    nodes_added: int = 0
    nodes_fused: int = 0
    constants_folded: int = 0
    initializers_removed: int = 0

    def record_census(self, before: Counter, after: Counter) -> None:
        self.nodes_before, self.nodes_after = sum(before.values()), sum(after.values())
        self.nodes_removed += sum((before - after).values())
        self.nodes_added += sum((after - before).values())

    def merge(self, later: "PassStats") -> None:
        """Accumulate the counters of a later run (node counts: first before, last after)."""
        for f in fields(self):
            if f.name == "nodes_after":
                self.nodes_after = later.nodes_after
            elif f.name != "nodes_before":
                setattr(self, f.name, getattr(self, f.name) + getattr(later, f.name))

    def summary(self) -> str:
        parts = [f"nodes {self.nodes_before} -> {self.nodes_after}"]
        parts += [f"{f.name.replace('_', ' ')} {getattr(self, f.name)}" for f in fields(self)
                  if f.name not in ("nodes_before", "nodes_after") and getattr(self, f.name)]
        return ", ".join(parts)


def node_census(module: ModuleOp) -> Counter:
    """Op name -> count over the graph nodes (not constants, functions or terminators)."""
    return Counter(op.name for op in module.walk()
                   if not isinstance(op, (ModuleOp, func.FuncOp, func.ReturnOp, graph.ConstantOp)))


@dataclass(frozen=True)
class GraphPass(ModulePass, ABC):
    """A pass over graph IR that reports statistics and may use the weight table."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        self.rewrite(op, WeightTable.of(op), PassStats())

    @abstractmethod
    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        """Transform `module` in place; returns whether anything changed."""


def apply_patterns(module: ModuleOp, patterns: Iterable[RewritePattern]) -> bool:
    """MLIR's greedy driver: apply until nothing matches, erasing ops that become dead."""
    walker = PatternRewriteWalker(GreedyRewritePatternApplier(list(patterns)), apply_recursively=True)
    return walker.rewrite_module(module)


def single_use(v: SSAValue) -> bool:
    """The value feeds exactly one operand, and that is not a graph output."""
    return v.has_one_use() and not isinstance(next(iter(v.uses)).operation, func.ReturnOp)
