"""View ops move no data: the result aliases its input's storage."""
from __future__ import annotations

from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern

from pyflame_rt.dialects import graph, graph_nn as nn, graph_tensor as gt
from pyflame_rt.dialects.symbolic import Dim, Shape, dim_mul
from pyflame_rt.targets.cpu.lowerings.pattern import GraphToKernelPattern


ViewOp = graph.FlattenOp | graph.ReshapeOp | graph.IdentityOp | nn.SqueezeOp | nn.UnsqueezeOp | gt.BitCastOp


class LowerView(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ViewOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op) -> None:
        alias(L, op)


def alias(L, op) -> None:
    """op's result: the bytes of its operand in a new shape (aliased, copied if it is a graph output)."""
    src = op.operands[0]
    if op.result in L.out_slot:
        L.emit_elementwise("copy", [src], L.result_loc(op.result), L.shapes[src])
    else:
        L.locs[op.result] = L.loc(src)
        if src in L.strides:  # a Reshape of a strided view (movement.py made sure it only splits dims)
            L.strides[op.result] = split_strides(L.shapes[src], L.strides[src], L.shapes[op.result])


def split_strides(in_shape: Shape, in_strides: list[Dim], out_shape: Shape) -> list[Dim] | None:
    """Element strides of a Reshape of a strided tensor when each input dim becomes one or more
    consecutive output dims (splits only, size-1 dims anywhere), else None."""
    out: list[Dim] = []
    j = 0
    for d, s in zip(in_shape, in_strides):
        group: list[Dim] = []
        size: Dim = 1
        while size != d and j < len(out_shape):
            if out_shape[j] == 1:
                if group:  # inside a split: keep it simple
                    return None
                out.append(1)
            else:
                group.append(out_shape[j])
                size = dim_mul(size, out_shape[j])
            j += 1
        if size != d:
            return None
        inner: list[Dim] = []
        for g in reversed(group):
            inner.append(s)
            s = dim_mul(s, g)
        out += reversed(inner)
    if any(d != 1 for d in out_shape[j:]):
        return None
    return out + [1] * (len(out_shape) - j)


PATTERNS = (LowerView,)
