"""Elementwise math graph ops -> the typed broadcasting elementwise kernels."""
from __future__ import annotations

from typing import Union

import numpy as np
from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern

from pyflame_rt.dialects import graph_bitwise as gb, graph_math as gm
from pyflame_rt.dialects.graph_attrs import RoundMode
from pyflame_rt.dtype import NARROW_FLOATS
from pyflame_rt.targets.cpu.lowerings.pattern import GraphToKernelPattern, node_label

# graph op -> (kernel op, params from the op's attributes)
_KERNEL_OPS = {
    gm.SqrtOp: "sqrt", gm.ExpOp: "exp", gm.LogOp: "log", gm.ErfOp: "erf", gm.TanhOp: "tanh",
    gm.SigmoidOp: "sigmoid", gm.ReciprocalOp: "reciprocal", gm.FloorOp: "floor", gm.CeilOp: "ceil",
    gm.SoftplusOp: "softplus", gm.HardSwishOp: "hard_swish", gm.NegOp: "neg", gm.AbsOp: "abs",
    gm.NotOp: "not", gm.PowOp: "pow", gm.ModOp: "mod", gm.PReluOp: "prelu", gm.EqualOp: "equal", gm.LessOp: "less",
    gm.LessOrEqualOp: "less_equal", gm.GreaterOp: "greater", gm.GreaterOrEqualOp: "greater_equal",
    gm.AndOp: "and", gm.OrOp: "or", gm.XorOp: "xor", gm.SumOp: "sum", gm.MinOp: "min", gm.MaxOp: "max",
    gm.MeanOp: "mean", gm.WhereOp: "where", gm.CastOp: "cast", gm.LeakyReluOp: "leaky_relu",
    gm.EluOp: "elu", gm.SeluOp: "selu", gm.HardSigmoidOp: "hard_sigmoid", gm.GeluOp: "gelu",
    gm.ClipOp: "clip", gm.RoundOp: "round", gm.SignOp: "sign", gm.SoftsignOp: "softsign", gm.MishOp: "mish",
    gm.IsNaNOp: "isnan", gm.IsInfOp: "isinf", gm.CeluOp: "celu", gm.ShrinkOp: "shrink",
    gm.ThresholdedReluOp: "thresholded_relu", **{op: f for f, op in gm.TRIG_OPS.items()},
    gb.BitwiseAndOp: "bitwise_and", gb.BitwiseOrOp: "bitwise_or", gb.BitwiseXorOp: "bitwise_xor",
    gb.BitwiseNotOp: "bitwise_not",
}
MathOp = Union[(*_KERNEL_OPS, gb.BitShiftOp)]


def _params(L, op) -> tuple:
    if isinstance(op, gm.AttrUnaryOp):
        return tuple(op.attr(k) for k in op.ATTRS)
    if isinstance(op, gm.IsInfOp):
        return (op.detect_positive.value.data, op.detect_negative.value.data)
    if isinstance(op, gm.ModOp):
        return (op.fmod.value.data,)
    if isinstance(op, gm.GeluOp):
        return (op.approximate.data == "tanh",)
    if isinstance(op, gm.CastOp) and L.dtype(op.result) in NARROW_FLOATS:
        return (bool(op.saturate.value.data), list(RoundMode).index(op.round_mode.data))
    if isinstance(op, gm.ClipOp):
        lo, hi = op.bounds()
        dt = L.dtype(op.input).numpy
        if np.issubdtype(dt, np.integer):  # integer bounds, saturated to the type's range
            info = np.iinfo(dt)
            return (int(max(info.min, np.ceil(lo))), int(min(info.max, np.floor(hi))))
        return (lo, hi)
    return ()


def _kernel_op(op) -> str:
    if isinstance(op, gb.BitShiftOp):
        return f"shift_{op.direction.data}"
    return _KERNEL_OPS[type(op)]


class LowerMath(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: MathOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op) -> None:
        L.emit_elementwise(_kernel_op(op), list(op.operands), L.result_loc(op.result),
                           L.shapes[op.result], L.dtype(op.result), _params(L, op), node=node_label(op))


PATTERNS = (LowerMath,)
