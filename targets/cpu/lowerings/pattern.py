"""The base of the graph -> kernel patterns, and the pattern that refuses what none lowers.

A `GraphToKernelPattern` lowers the graph ops it matches through the conversion state it holds:
the `GraphLowering` of the module being converted (storage of every value, shapes, the schedule
block being built, and the emitters patterns call, lower_graph.py). It emits the op's launches,
then replaces the op by its results' materializations (`GraphLowering.replace`), so the ops after
it read storage the state knows. A leaf module: the families import it, it imports none of them.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from xdsl.dialects import func
from xdsl.dialects.builtin import UnrealizedConversionCastOp
from xdsl.ir import Operation
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern

from pyflame_rt.dialects import graph
from pyflame_rt.errors import UnsupportedOperatorError

if TYPE_CHECKING:
    from pyflame_rt.targets.cpu.lower_graph import GraphLowering

DEFAULT_LAYOUT = "NCHW"


def layout_of(op: Operation) -> str:
    """The layout of an op's tensors: its `layout` property, DEFAULT_LAYOUT for ops without one."""
    layout = op.properties.get("layout")
    return DEFAULT_LAYOUT if layout is None else str(layout.data)


class GraphToKernelPattern(RewritePattern, ABC):
    """Lowers the graph ops its typed `match_and_rewrite` matches (calling `convert`) in `layout`;
    `float32_only` names those whose float kernels compute float32 only (the
    `legalize-half-precision` pass runs their float16 / bfloat16 instances in float32)."""

    layout: ClassVar[str] = DEFAULT_LAYOUT
    float32_only: ClassVar[tuple[type[Operation], ...]] = ()

    def __init__(self, lowering: GraphLowering):
        self.lowering = lowering

    def convert(self, op: Operation, rewriter: PatternRewriter) -> None:
        """Lower op and replace it, unless it is in another layout (then the pattern does not match)."""
        if layout_of(op) != self.layout:
            return
        with self.lowering.converting(op):
            self.lower(self.lowering, op)
        self.lowering.replace(op, rewriter)

    @abstractmethod
    def lower(self, L: GraphLowering, op: Operation) -> None:
        """Emit op's launches: ask L for operand and result storage, call its emitters."""


class RefuseUnsupported(RewritePattern):
    """The last pattern: a graph op no pattern before it lowered is unsupported."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if isinstance(op, (graph.ConstantOp, func.ReturnOp, UnrealizedConversionCastOp)):
            return
        layout = op.properties.get("layout")
        raise UnsupportedOperatorError(f"the CPU backend cannot lower {op.name}"
                                       + (f" in layout {layout.data}" if layout is not None else ""))


def node_label(op: Operation) -> str:
    """How run-time errors name a graph op: its kind and the (ONNX) name of its first result."""
    kind = op.name.split(".", 1)[-1].replace("_", " ").title().replace(" ", "")
    hint = op.results[0].name_hint if op.results else None
    return f"{kind} node (output '{hint}')" if hint else f"{kind} node"
