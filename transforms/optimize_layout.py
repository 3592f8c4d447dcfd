"""`optimize-layout`: run convolutions and pools channels-last (NHWC), transposing only at the edges.

Channels-last kernels vectorize over channels (contiguous in NHWC); the CPU's turn
a 1x1 convolution into one plain GEMM and need no padding copy. The pass

1. converts every layout-carrying op the target has an NHWC kernel for (its
   `capabilities.channels_last`) to `layout = "NHWC"`, wrapped in `graph.transpose` NCHW->NHWC
   on its input and NHWC->NCHW on its result;
2. sinks transposes through layout-agnostic ops (elementwise ops whose other
   operands are transposed the same way or constants, permuted now; Concat with
   its axis remapped), so that the transpose leaving one converted op meets the
   one entering the next;
3. composes adjacent transposes and drops identity ones.

A chain of converted ops then keeps one transpose at each of its ends (the graph
input and wherever a layout-sensitive op such as Flatten needs NCHW again).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, TensorType, i64
from xdsl.ir import Operation, SSAValue
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from pyflame_rt.dialects import graph, graph_fused, graph_math, quant
from pyflame_rt.dialects import graph_nn as nn
from pyflame_rt.dialects.graph_attrs import Layout, LayoutAttr
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.transforms.graph_pass import (
    PassStats, TargetGraphPass, apply_patterns, constant_array, make_constant)
from pyflame_rt.transforms.registry import register_pass

TO_NHWC = (0, 2, 3, 1)
TO_NCHW = (0, 3, 1, 2)
LAYOUT_OPS = (nn.ConvOp, nn.MaxPoolOp, nn.AveragePoolOp, nn.GlobalAveragePoolOp, nn.GlobalMaxPoolOp, quant.ConvOp)
# ops computing each element from the same element of their (broadcast) operands (a quantize or
# dequantize when its type is per tensor)
ELEMENTWISE = (graph.ElementwiseBinaryOp, graph.ElementwiseUnaryOp, graph_fused.MulAddOp,
               graph_math.ElementwiseVariadicOp, graph_math.WhereOp, quant.QuantizeOp, quant.DequantizeOp)


def elementwise(op: Operation) -> bool:
    if isinstance(op, quant.AddOp):  # kept by expand-quant for its kernel: one shape, per tensor
        return op.same_shape_bytes()
    return isinstance(op, ELEMENTWISE) and not (isinstance(op, (quant.QuantizeOp, quant.DequantizeOp))
                                                and op.type.per_axis)


def permuted_type(t: TensorType, perm) -> TensorType:
    shape = t.get_shape()
    return TensorType(t.get_element_type(), [shape[p] for p in perm])


def inverse(perm) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(perm))


def transpose(v: SSAValue, perm) -> nn.TransposeOp:
    return nn.TransposeOp(v, permuted_type(v.type, perm), perm=perm)


def perm_of(op: nn.TransposeOp) -> tuple[int, ...]:
    return tuple(int(p) for p in op.perm.get_values())


def existing_transpose(v: SSAValue, perm, before: Operation) -> SSAValue | None:
    """A transpose of `v` by `perm` that the graph computes before `before` anyway."""
    for use in v.uses:
        t = use.operation
        if isinstance(t, nn.TransposeOp) and perm_of(t) == tuple(perm) and t.is_before_in_block(before):
            return t.result
    return None


def rebuild(op: Operation, operands, result_type: TensorType, **props) -> Operation:
    """A copy of `op` with new operands, result type and (some) properties."""
    return type(op).create(operands=list(operands), result_types=[result_type],
                           properties={**op.properties, **props}, attributes=dict(op.attributes))


@dataclass
class ConvertToNHWC(RewritePattern):
    """op(x[, r]) -> transpose_to_NCHW(op_NHWC(transpose_to_NHWC(x)[, transpose_to_NHWC(r)])): a conv's
    residual is laid out like its result; a transpose the graph already has is reused."""

    stats: PassStats
    channels_last: Callable[[Operation], bool]

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, LAYOUT_OPS) or op.layout.data != "NCHW" or not self.channels_last(op):
            return
        pre: list[Operation] = []

        def to_nhwc(v: SSAValue) -> SSAValue:
            reused = existing_transpose(v, TO_NHWC, op)
            if reused is not None:
                return reused
            pre.append(transpose(v, TO_NHWC))
            return pre[-1].results[0]

        operands = [to_nhwc(op.operands[0]), *op.operands[1:]]
        if isinstance(op, nn.ConvOp) and op.residual is not None:
            operands[-1] = to_nhwc(op.residual)
        new = rebuild(op, operands, permuted_type(op.results[0].type, TO_NHWC), layout=LayoutAttr(Layout.NHWC))
        back = transpose(new.results[0], TO_NCHW)
        rewriter.replace(op, [*pre, new, back], [back.result])
        self.stats.nodes_added += len(pre) + 1


@dataclass
class ComposeTransposes(RewritePattern):
    """transpose(transpose(x, p), q) -> transpose(x, p[q]); an identity transpose disappears."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.TransposeOp, rewriter: PatternRewriter) -> None:
        perm = perm_of(op)
        if perm == tuple(range(len(perm))):
            rewriter.replace(op, [], [op.input])
            return
        inner = op.input.owner
        if isinstance(inner, nn.TransposeOp):
            first = perm_of(inner)
            rewriter.replace(op, transpose(inner.input, [first[p] for p in perm]))


@dataclass
class SinkTranspose(RewritePattern):
    """f(transpose(x, p), ...) -> transpose(f(x, ...), p) for layout-agnostic f: every other
    non-scalar operand is transposed by the same p, is a constant (permuted here) or, when p is
    NHWC->NCHW, has its inverse transpose computed earlier anyway (the input of a converted op)."""

    weights: WeightTable

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not (elementwise(op) or isinstance(op, nn.ConcatOp)) or len(op.results) != 1:
            return
        perms = {perm_of(v.owner) for v in op.operands if isinstance(v.owner, nn.TransposeOp)}
        if len(perms) != 1:
            return
        (perm,) = perms
        rank = len(perm)
        if len(op.results[0].type.get_shape()) != rank:
            return
        inv = inverse(perm)
        new_operands, pre = [], []
        for v in op.operands:
            if isinstance(v.owner, nn.TransposeOp) and perm_of(v.owner) == perm:
                new_operands.append(v.owner.input)
                continue
            arr = constant_array(v, self.weights)
            if arr is None:
                # only for transposes leaving converted ops: reusing the inverse of an arbitrary
                # perm could sink it back and forth forever
                reused = existing_transpose(v, inv, op) if perm == TO_NCHW else None
                if reused is None:
                    return
                new_operands.append(reused)
                continue
            if isinstance(op, nn.ConcatOp):
                return
            if arr.size == 1:
                new_operands.append(v)
                continue
            full = arr.reshape((1,) * (rank - arr.ndim) + arr.shape)
            const = make_constant(np.ascontiguousarray(full.transpose(inv)), "nhwc_const", self.weights, 16)
            pre.append(const)
            new_operands.append(const.result)
        props = {"axis": IntegerAttr(perm[op.axis.value.data % rank], i64)} if isinstance(op, nn.ConcatOp) else {}
        new = rebuild(op, new_operands, permuted_type(op.results[0].type, inv), **props)
        back = transpose(new.results[0], perm)
        rewriter.replace(op, [*pre, new, back], [back.result])


@register_pass
@dataclass(frozen=True)
class OptimizeLayout(TargetGraphPass):
    """Conv / pools -> NHWC where the target has channels-last kernels; transposes only at chain ends."""

    name = "optimize-layout"

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        changed = apply_patterns(module, [ConvertToNHWC(stats, self.capabilities.channels_last)])
        return apply_patterns(module, [ComposeTransposes(), SinkTranspose(weights)]) or changed
