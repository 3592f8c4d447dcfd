"""Converters for elementwise math: unary math and activations, variadic Sum/Min/Max/Mean,
comparisons, logic, Where, Cast, CastLike, Clip (attributes before opset 11, inputs since)."""
from __future__ import annotations

import numpy as np

from pyflame_rt.dialects import graph, graph_math as gm
from pyflame_rt.dtype import DType
from pyflame_rt.importers.onnx.converters import _NodeContext, converter
from pyflame_rt.dialects.reference.math import cast_array

_UNARY = {
    "Sqrt": gm.SqrtOp, "Exp": gm.ExpOp, "Log": gm.LogOp, "Erf": gm.ErfOp, "Tanh": gm.TanhOp,
    "Sigmoid": gm.SigmoidOp, "Reciprocal": gm.ReciprocalOp, "Floor": gm.FloorOp, "Ceil": gm.CeilOp,
    "Softplus": gm.SoftplusOp, "HardSwish": gm.HardSwishOp, "Neg": gm.NegOp, "Abs": gm.AbsOp, "Not": gm.NotOp,
    "Round": gm.RoundOp, "Sign": gm.SignOp, "Softsign": gm.SoftsignOp, "Mish": gm.MishOp, "IsNaN": gm.IsNaNOp,
    **{f.capitalize(): op for f, op in gm.TRIG_OPS.items()},
}
# op type -> (graph op, {onnx attribute: graph property})
_ATTR_UNARY = {
    "LeakyRelu": (gm.LeakyReluOp, ("alpha",)), "Elu": (gm.EluOp, ("alpha",)),
    "Selu": (gm.SeluOp, ("alpha", "gamma")), "HardSigmoid": (gm.HardSigmoidOp, ("alpha", "beta")),
    "Celu": (gm.CeluOp, ("alpha",)), "Shrink": (gm.ShrinkOp, ("lambd", "bias")),
    "ThresholdedRelu": (gm.ThresholdedReluOp, ("alpha",)),
}
_BINARY = {
    "Equal": gm.EqualOp, "Less": gm.LessOp, "LessOrEqual": gm.LessOrEqualOp, "Greater": gm.GreaterOp,
    "GreaterOrEqual": gm.GreaterOrEqualOp, "And": gm.AndOp, "Or": gm.OrOp, "Xor": gm.XorOp,
}
_VARIADIC = {"Sum": gm.SumOp, "Min": gm.MinOp, "Max": gm.MaxOp, "Mean": gm.MeanOp}


@converter(*_UNARY)
def _unary(ctx: _NodeContext):
    return ctx.emit(_UNARY[ctx.node.op_type], [ctx.input(0)])


@converter(*_ATTR_UNARY)
def _attr_unary(ctx: _NodeContext):
    op_cls, names = _ATTR_UNARY[ctx.node.op_type]
    return ctx.emit(op_cls, [ctx.input(0)], **{k: float(ctx.attrs[k]) for k in names if k in ctx.attrs})


@converter("IsInf")
def _is_inf(ctx: _NodeContext):
    return ctx.emit(gm.IsInfOp, [ctx.input(0)], detect_positive=bool(ctx.attrs.get("detect_positive", 1)),
                    detect_negative=bool(ctx.attrs.get("detect_negative", 1)))


@converter("Gelu")
def _gelu(ctx: _NodeContext):
    approximate = ctx.attrs.get("approximate", b"none")
    approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
    if approximate not in ("none", "tanh"):
        raise ctx.fail(f"approximate='{approximate}' is not defined")
    return ctx.emit(gm.GeluOp, [ctx.input(0)], approximate=approximate)


@converter(*_BINARY)
def _binary(ctx: _NodeContext):
    return ctx.emit(_BINARY[ctx.node.op_type], [ctx.input(0), ctx.input(1)])


@converter("PRelu")
def _prelu(ctx: _NodeContext):
    """Before opset 7 a [C] slope is per channel (axis 1); since, it broadcasts from the right. onnx's
    version converter keeps the slope's shape, so the model's own opset decides."""
    x, slope = ctx.input(0), ctx.input(1)
    x_shape, slope_shape = ctx.shape(x), ctx.shape(slope)
    if ctx.importer.source_opset < 7 and len(slope_shape) == 1 and slope_shape[0] != 1 and len(x_shape) > 2:
        slope = ctx.emit(graph.ReshapeOp, [slope], shape=[slope_shape[0]] + [1] * (len(x_shape) - 2))[0]
    return ctx.emit(gm.PReluOp, [x, slope])


@converter(*_VARIADIC)
def _variadic(ctx: _NodeContext):
    inputs = [ctx.input(i) for i in range(len(ctx.node.input))]
    return ctx.emit(_VARIADIC[ctx.node.op_type], inputs)


@converter("Where")
def _where(ctx: _NodeContext):
    return ctx.emit(gm.WhereOp, [ctx.input(0), ctx.input(1), ctx.input(2)])


# a constant Cast input at most this large is cast at import; larger ones stay graph ops and are
# left to fold-constants, which weighs a folded weight's size
FOLD_CAST_MAX_ELEMENTS = 1024


def _cast_to(ctx: _NodeContext, to: DType) -> list:
    """A small constant input is cast now (with the compiled Cast's semantics), so converters that
    need a constant argument see one: Pad's constant_value is often CastLike(-inf, x). `saturate`
    and `round_mode` (opsets 19 and 25) only change casts to float8."""
    saturate = bool(ctx.attrs.get("saturate", 1))
    round_mode = ctx.attrs.get("round_mode", b"up")
    round_mode = round_mode.decode() if isinstance(round_mode, bytes) else round_mode
    arr = ctx.const_input(0)
    if arr is not None and arr.size <= FOLD_CAST_MAX_ELEMENTS:
        return [ctx.importer.add_constant(ctx.node.output[0], cast_array(arr, to, saturate, round_mode))]
    return ctx.emit(gm.CastOp, [ctx.input(0)], to=to.value, saturate=saturate, round_mode=round_mode)


@converter("Cast", newer_attributes=("round_mode",))
def _cast(ctx: _NodeContext):
    return _cast_to(ctx, DType.from_onnx(ctx.attrs["to"]))


@converter("CastLike", newer_attributes=("round_mode",))
def _cast_like(ctx: _NodeContext):
    """Cast to the element type of the second input (its values are not read)."""
    return _cast_to(ctx, graph.dtype_of(ctx.input(1).type))


@converter("Pow")
def _pow(ctx: _NodeContext):
    """The exponent takes a float base's type; for an integer base, an integer exponent is widened
    to int64 (a float one stays: 2 ** 2.5 truncates 5.66, it is not 2 ** 2)."""
    base, exponent = ctx.input(0), ctx.input(1)
    base_dtype, exp_dtype = graph.dtype_of(base.type), graph.dtype_of(exponent.type)
    to = base_dtype if base_dtype in gm.FLOAT_DTYPES else DType.INT64 if exp_dtype in gm.INTEGER_DTYPES else exp_dtype
    if exp_dtype is not to:
        exponent = ctx.emit(gm.CastOp, [exponent], to=to.value)[0]
    return ctx.emit(gm.PowOp, [base, exponent])


@converter("Mod")
def _mod(ctx: _NodeContext):
    fmod = bool(ctx.attrs.get("fmod", 0))
    return ctx.emit(gm.ModOp, [ctx.input(0), ctx.input(1)], fmod=fmod)


@converter("Clip")
def _clip(ctx: _NodeContext):
    """Constant bounds become attributes; tensor bounds become Max / Min."""
    x = ctx.input(0)
    if ctx.opset < 11:
        return ctx.emit(gm.ClipOp, [x], min=ctx.attrs.get("min"), max=ctx.attrs.get("max"))
    bounds, dynamic = {}, []
    for i, name, op_cls in ((1, "min", gm.MaxOp), (2, "max", gm.MinOp)):
        v = ctx.const_input(i)
        if v is not None:
            bounds[name] = float(np.asarray(v).reshape(-1)[0])
        elif ctx.input(i) is not None:
            dynamic.append((op_cls, ctx.input(i)))
    if bounds or not dynamic:
        x = ctx.emit(gm.ClipOp, [x], **bounds)[0]
    for op_cls, bound in dynamic:
        x = ctx.emit(op_cls, [x, bound])[0]
    return [x]
