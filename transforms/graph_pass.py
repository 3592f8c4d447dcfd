"""What the graph-level passes share: statistics, the weights view, the greedy driver,
reading and making constants, the single-consumer check.

A `GraphPass` is an ordinary xDSL `ModulePass` (so `pyflame-opt -p` runs it), whose
work is done by `rewrite(module, weights, stats)`: the PassManager calls that
directly to collect the pass's statistics, `apply` calls it with throwaway ones.
Node counts (ops other than constants, weights and the terminator) are taken by the
PassManager before and after every pass, whatever kind of pass it is.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, fields, replace
from typing import Iterable, TypeVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, ModuleOp
from xdsl.ir import SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier, PatternRewriterListener, PatternRewriteWalker, RewritePattern)

from pyflame_rt.dialects import graph
from pyflame_rt.dialects.weights import WeightOp, WeightTable
from pyflame_rt.dtype import DType
from pyflame_rt.errors import ValidationError
from pyflame_rt.targets.target import Capabilities, Target

OpT = TypeVar("OpT")


@dataclass
class PassStats:
    """What a pass (or a whole pipeline) did to the graph.

    nodes_fused counts the nodes absorbed into another op (MatMul+Add -> Gemm
    absorbs 1, a 9-node LayerNorm subgraph 8); constants_folded counts nodes
    replaced by constants; initializers_added / initializers_removed count
    `graph.weight`s created (folded weights) / dropped.
    """

    nodes_before: int = 0
    nodes_after: int = 0
    nodes_removed: int = 0
    nodes_added: int = 0
    nodes_fused: int = 0
    constants_folded: int = 0
    initializers_added: int = 0
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

    def summary(self, node_counts: bool = True) -> str:
        parts = [f"nodes {self.nodes_before} -> {self.nodes_after}"] if node_counts else []
        parts += [f"{f.name.replace('_', ' ')} {getattr(self, f.name)}" for f in fields(self)
                  if f.name not in ("nodes_before", "nodes_after") and getattr(self, f.name)]
        return ", ".join(parts) or "no change"


def node_census(module: ModuleOp) -> Counter:
    """Op name -> count over the graph nodes (not constants, weights, functions or terminators)."""
    return Counter(op.name for op in module.walk()
                   if not isinstance(op, (ModuleOp, func.FuncOp, func.ReturnOp, graph.ConstantOp, WeightOp)))


@dataclass(frozen=True)
class GraphPass(ModulePass, ABC):
    """A pass over graph IR that reports statistics; `weights` is `WeightTable.of(module)`."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        self.rewrite(op, WeightTable.of(op), PassStats())

    @abstractmethod
    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        """Transform `module` in place; returns whether anything changed."""


@dataclass(frozen=True)
class TargetGraphPass(GraphPass, ABC):
    """A graph pass whose rewrites depend on what the target's kernels support. It is handed the
    target object (a PassManager hands its own to the passes it runs), never imports one."""

    target: Target | None = None

    @property
    def capabilities(self) -> Capabilities:
        if self.target is None:
            raise ValidationError(f"pass '{self.name}' depends on the target's kernels: hand it a target "
                                  f"(PassManager(..., target=...) or {type(self).__name__}(target=...))")
        return self.target.capabilities


def handed(p: ModulePass, target: Target | None) -> ModulePass:
    """`p`, handed `target` if it is a target-dependent pass that has none yet."""
    if isinstance(p, TargetGraphPass) and p.target is None and target is not None:
        return replace(p, target=target)
    return p


def apply_patterns(module: ModuleOp, patterns: Iterable[RewritePattern]) -> bool:
    """MLIR's greedy driver: apply until nothing matches, erasing ops that become dead."""
    walker = PatternRewriteWalker(GreedyRewritePatternApplier(list(patterns)), apply_recursively=True,
                                  listener=node_name_keeper())
    return walker.rewrite_module(module)


def node_name_keeper() -> PatternRewriterListener:
    """A rewrite listener: the ops a pattern inserts take the ONNX node name of the op they replace,
    unless they already carry one (a rebuilt conv keeps its own), so shape errors still name the node."""
    inserted: list = []

    def replaced(op, new_results) -> None:
        for new in inserted:
            graph.keep_node_name(op, new)
        inserted.clear()

    return PatternRewriterListener(operation_insertion_handler=[inserted.append],
                                   operation_replacement_handler=[replaced])


def constant_array(v: SSAValue, weights: WeightTable) -> np.ndarray | None:
    """The value of `v` if a graph.constant with a known value defines it."""
    op = v.owner
    if not isinstance(op, graph.ConstantOp):
        return None
    if op.weight_name is not None:
        arr = weights.get(op.weight_name)
        return None if arr is None else np.asarray(arr).reshape(graph.static_shape(op.result.type))
    return graph.dense_value(op.value, graph.static_shape(op.result.type))


def make_constant(arr: np.ndarray, hint: str, weights: WeightTable, inline_elements: int) -> graph.ConstantOp:
    """A graph.constant for `arr`: inline when small, else a new `graph.weight` named from `hint`."""
    t = graph.tensor_type(arr.shape, DType.from_numpy(arr.dtype))
    if arr.size <= inline_elements:
        return graph.ConstantOp(t, value=DenseIntOrFPElementsAttr.from_list(t, arr.ravel().tolist()))
    return graph.ConstantOp(t, weight=weights.add(hint, arr))


def single_use(v: SSAValue) -> bool:
    """The value feeds exactly one operand, and that is not a graph output."""
    return v.has_one_use() and not isinstance(next(iter(v.uses)).operation, func.ReturnOp)


def scalar_constant(v: SSAValue, weights: WeightTable) -> float | None:
    """The value of a single-element constant."""
    arr = constant_array(v, weights)
    return float(arr.reshape(-1)[0]) if arr is not None and arr.size == 1 else None


def defining(v: SSAValue, op_type: type[OpT]) -> OpT | None:
    """The op of type `op_type` that produces `v`, if that is what produces it."""
    return v.owner if isinstance(v.owner, op_type) else None


def operand_pairs(op) -> tuple[tuple[SSAValue, SSAValue], ...]:
    """(x, y) and (y, x) for a commutative binary op."""
    return (op.lhs, op.rhs), (op.rhs, op.lhs)


def only_used_by(v: SSAValue, users: set) -> bool:
    """Every use of `v` is by one of `users` (and it is not a graph output)."""
    return all(u.operation in users for u in v.uses)
