"""Elementwise math ops of the `graph` dialect: unary math and activations, variadic
Sum/Min/Max/Mean, comparisons and logic (bool results), Where and Cast.

Shapes broadcast like the core arithmetic ops; element types are checked by
`infer_dtypes` (float-only math rejects integers, comparisons yield bool).
"""
from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import BoolAttr, FloatAttr, TensorType, f32
from xdsl.ir import SSAValue
from xdsl.irdl import irdl_op_definition, operand_def, opt_prop_def, prop_def, result_def
from xdsl.utils.exceptions import VerifyException

from pyflame_rt.dialects.graph import (
    ElementwiseBinaryOp, ElementwiseUnaryOp, GraphOp, VariadicOp, broadcast_shapes, same_dtype)
from pyflame_rt.dialects.graph_attrs import (
    ElementTypeAttr, GeluApproximation, GeluApproximationAttr, RoundMode, RoundModeAttr, enum_attr)
from pyflame_rt.dtype import DType
from pyflame_rt.errors import DTypeMismatchError

FLOAT_DTYPES = (DType.FLOAT32, DType.FLOAT16, DType.BFLOAT16, DType.FLOAT64)
INTEGER_DTYPES = (DType.INT64, DType.INT32, DType.INT16, DType.INT8, DType.UINT64, DType.UINT32, DType.UINT16,
                  DType.UINT8)


class FloatUnaryOp(ElementwiseUnaryOp):
    """A unary op defined on floating-point tensors only."""

    def infer_dtypes(self, dtypes):
        if dtypes[0] not in FLOAT_DTYPES:
            raise DTypeMismatchError(f"operand must be a float tensor, got {dtypes[0].value}")
        return [dtypes[0]]


class AttrUnaryOp(FloatUnaryOp):
    """A float unary op with float attributes (alpha, beta, gamma)."""

    ATTRS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, input: SSAValue, result_type: TensorType | None = None, **attrs: float):
        super().__init__(input, result_type, **{k: FloatAttr(float(attrs[k]), f32) for k in self.ATTRS if k in attrs})

    def attr(self, name: str) -> float:
        return getattr(self, name).value.data


@irdl_op_definition
class SqrtOp(FloatUnaryOp):
    name = "graph.sqrt"


@irdl_op_definition
class ExpOp(FloatUnaryOp):
    name = "graph.exp"


@irdl_op_definition
class LogOp(FloatUnaryOp):
    name = "graph.log"


@irdl_op_definition
class ErfOp(FloatUnaryOp):
    name = "graph.erf"


@irdl_op_definition
class TanhOp(FloatUnaryOp):
    name = "graph.tanh"


@irdl_op_definition
class SigmoidOp(FloatUnaryOp):
    name = "graph.sigmoid"


@irdl_op_definition
class ReciprocalOp(FloatUnaryOp):
    name = "graph.reciprocal"


@irdl_op_definition
class FloorOp(FloatUnaryOp):
    name = "graph.floor"


@irdl_op_definition
class CeilOp(FloatUnaryOp):
    name = "graph.ceil"


@irdl_op_definition
class SoftplusOp(FloatUnaryOp):
    name = "graph.softplus"


@irdl_op_definition
class HardSwishOp(FloatUnaryOp):
    name = "graph.hard_swish"


@irdl_op_definition
class RoundOp(FloatUnaryOp):
    """Round half to even."""

    name = "graph.round"


@irdl_op_definition
class SoftsignOp(FloatUnaryOp):
    name = "graph.softsign"


@irdl_op_definition
class MishOp(FloatUnaryOp):
    name = "graph.mish"


class TrigOp(FloatUnaryOp):
    """A trigonometric or hyperbolic function: one op class per name in TRIG_FUNCTIONS
    (graph.sin ... graph.atanh), reached through TRIG_OPS."""


def _trig_op(function: str) -> type[TrigOp]:
    cls = type(f"{function.capitalize()}Op", (TrigOp,), {"name": f"graph.{function}", "__module__": __name__})
    return irdl_op_definition(cls)


TRIG_FUNCTIONS = ("sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh")
TRIG_OPS: dict[str, type[TrigOp]] = {f: _trig_op(f) for f in TRIG_FUNCTIONS}


@irdl_op_definition
class SignOp(ElementwiseUnaryOp):
    """-1, 0 or 1 in the input's type (NaN stays NaN)."""

    name = "graph.sign"


class FloatPredicateOp(FloatUnaryOp):
    """A bool-valued test of each element of a float tensor."""

    def infer_dtypes(self, dtypes):
        super().infer_dtypes(dtypes)
        return [DType.BOOL]


@irdl_op_definition
class IsNaNOp(FloatPredicateOp):
    name = "graph.is_nan"


@irdl_op_definition
class IsInfOp(FloatPredicateOp):
    """+inf (detect_positive) and / or -inf (detect_negative) -> true."""

    name = "graph.is_inf"
    detect_positive = prop_def(BoolAttr, default_value=BoolAttr.from_bool(True))
    detect_negative = prop_def(BoolAttr, default_value=BoolAttr.from_bool(True))

    def __init__(self, input, result_type=None, detect_positive: bool = True, detect_negative: bool = True):
        super().__init__(input, result_type, detect_positive=BoolAttr.from_bool(detect_positive),
                         detect_negative=BoolAttr.from_bool(detect_negative))


@irdl_op_definition
class NegOp(ElementwiseUnaryOp):
    name = "graph.neg"


@irdl_op_definition
class AbsOp(ElementwiseUnaryOp):
    name = "graph.abs"


@irdl_op_definition
class LeakyReluOp(AttrUnaryOp):
    name = "graph.leaky_relu"
    alpha = prop_def(FloatAttr, default_value=FloatAttr(0.01, f32))
    ATTRS: ClassVar[tuple[str, ...]] = ("alpha",)


@irdl_op_definition
class EluOp(AttrUnaryOp):
    name = "graph.elu"
    alpha = prop_def(FloatAttr, default_value=FloatAttr(1.0, f32))
    ATTRS: ClassVar[tuple[str, ...]] = ("alpha",)


@irdl_op_definition
class SeluOp(AttrUnaryOp):
    name = "graph.selu"
    alpha = prop_def(FloatAttr, default_value=FloatAttr(1.67326319217681884765625, f32))
    gamma = prop_def(FloatAttr, default_value=FloatAttr(1.05070102214813232421875, f32))
    ATTRS: ClassVar[tuple[str, ...]] = ("alpha", "gamma")


@irdl_op_definition
class HardSigmoidOp(AttrUnaryOp):
    name = "graph.hard_sigmoid"
    alpha = prop_def(FloatAttr, default_value=FloatAttr(0.2, f32))
    beta = prop_def(FloatAttr, default_value=FloatAttr(0.5, f32))
    ATTRS: ClassVar[tuple[str, ...]] = ("alpha", "beta")


@irdl_op_definition
class CeluOp(AttrUnaryOp):
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""

    name = "graph.celu"
    alpha = prop_def(FloatAttr, default_value=FloatAttr(1.0, f32))
    ATTRS: ClassVar[tuple[str, ...]] = ("alpha",)

    def verify_(self) -> None:
        super().verify_()
        if self.attr("alpha") == 0.0:
            raise VerifyException("graph.celu: alpha must not be 0")


@irdl_op_definition
class ShrinkOp(AttrUnaryOp):
    """x + bias below -lambd, x - bias above lambd, 0 between."""

    name = "graph.shrink"
    lambd = prop_def(FloatAttr, default_value=FloatAttr(0.5, f32))
    bias = prop_def(FloatAttr, default_value=FloatAttr(0.0, f32))
    ATTRS: ClassVar[tuple[str, ...]] = ("lambd", "bias")


@irdl_op_definition
class ThresholdedReluOp(AttrUnaryOp):
    """x where x > alpha, else 0."""

    name = "graph.thresholded_relu"
    alpha = prop_def(FloatAttr, default_value=FloatAttr(1.0, f32))
    ATTRS: ClassVar[tuple[str, ...]] = ("alpha",)


@irdl_op_definition
class GeluOp(FloatUnaryOp):
    """GELU (opset 20): approximate = "none" (erf form) or "tanh"."""

    name = "graph.gelu"
    approximate = prop_def(GeluApproximationAttr, default_value=GeluApproximationAttr(GeluApproximation.NONE))

    def __init__(self, input, result_type=None, approximate: str = "none"):
        super().__init__(input, result_type, approximate=enum_attr(GeluApproximationAttr, approximate))


@irdl_op_definition
class ClipOp(ElementwiseUnaryOp):
    """Clamp to [min, max]; an absent bound is unbounded."""

    name = "graph.clip"
    min = opt_prop_def(FloatAttr)
    max = opt_prop_def(FloatAttr)

    def __init__(self, input, result_type=None, min: float | None = None, max: float | None = None):
        bounds = {"min": min, "max": max}
        super().__init__(input, result_type, **{k: FloatAttr(float(v), f32) for k, v in bounds.items() if v is not None})

    def bounds(self) -> tuple[float, float]:
        lo = self.min.value.data if self.min is not None else float("-inf")
        hi = self.max.value.data if self.max is not None else float("inf")
        return lo, hi


@irdl_op_definition
class CastOp(ElementwiseUnaryOp):
    """Convert the element type (ONNX Cast): `graph.cast %x to int64 : ...`. To float8, `saturate`
    clamps out-of-range values to the largest finite one (else Inf or NaN), and float8e8m0 rounds by
    `round_mode`."""

    name = "graph.cast"
    to = prop_def(ElementTypeAttr)
    saturate = prop_def(BoolAttr, default_value=BoolAttr.from_bool(True))
    round_mode = prop_def(RoundModeAttr, default_value=RoundModeAttr(RoundMode.UP))
    assembly_format = "$input `to` $to attr-dict `:` functional-type(operands, results)"

    def __init__(self, input, result_type=None, to: str = "float32", saturate: bool = True, round_mode: str = "up"):
        super().__init__(input, result_type, to=enum_attr(ElementTypeAttr, to), saturate=BoolAttr.from_bool(saturate),
                         round_mode=enum_attr(RoundModeAttr, round_mode))

    def infer_dtypes(self, dtypes):
        return [DType(self.to.data)]


@irdl_op_definition
class NotOp(ElementwiseUnaryOp):
    name = "graph.not"

    def infer_dtypes(self, dtypes):
        if dtypes[0] is not DType.BOOL:
            raise DTypeMismatchError(f"operand must be bool, got {dtypes[0].value}")
        return [DType.BOOL]


# ------------------------------------------------------------------ binary


@irdl_op_definition
class PowOp(ElementwiseBinaryOp):
    """x ** y in the base's type. A float base takes an exponent of its own type (the importer
    converts it); an integer base an int64 or float exponent."""

    name = "graph.pow"

    def infer_dtypes(self, dtypes):
        base, exponent = dtypes
        ok = exponent is base if base in FLOAT_DTYPES else base in INTEGER_DTYPES and (
            exponent is DType.INT64 or exponent in FLOAT_DTYPES)
        if not ok:
            raise DTypeMismatchError(f"pow needs a float base and exponent of one type, or an integer base and "
                                     f"an int64 or float exponent; got {[d.value for d in dtypes]}")
        return [base]


@irdl_op_definition
class ModOp(ElementwiseBinaryOp):
    """Remainder (ONNX Mod): fmod = 1 is C's fmod (the dividend's sign), fmod = 0 modulo with the
    divisor's sign (Python's %; for floats since opset 28). x mod 0 is 0 for integers, NaN for floats."""

    name = "graph.mod"
    fmod = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))

    def __init__(self, lhs, rhs, result_type, fmod: bool = False):
        super().__init__(lhs, rhs, result_type, fmod=BoolAttr.from_bool(fmod))

    def infer_dtypes(self, dtypes):
        d = same_dtype(dtypes, self.name)
        if d is DType.BOOL:
            raise DTypeMismatchError("mod of bool tensors")
        return [d]


@irdl_op_definition
class PReluOp(ElementwiseBinaryOp):
    """x if x > 0 else slope * x, slope broadcast to x."""

    name = "graph.prelu"


class CompareOp(ElementwiseBinaryOp):
    def infer_dtypes(self, dtypes):
        same_dtype(dtypes, self.name)
        return [DType.BOOL]


@irdl_op_definition
class EqualOp(CompareOp):
    name = "graph.equal"


@irdl_op_definition
class LessOp(CompareOp):
    name = "graph.less"


@irdl_op_definition
class LessOrEqualOp(CompareOp):
    name = "graph.less_or_equal"


@irdl_op_definition
class GreaterOp(CompareOp):
    name = "graph.greater"


@irdl_op_definition
class GreaterOrEqualOp(CompareOp):
    name = "graph.greater_or_equal"


class LogicalOp(ElementwiseBinaryOp):
    def infer_dtypes(self, dtypes):
        if any(d is not DType.BOOL for d in dtypes):
            raise DTypeMismatchError(f"operands must be bool, got {[d.value for d in dtypes]}")
        return [DType.BOOL]


@irdl_op_definition
class AndOp(LogicalOp):
    name = "graph.and"


@irdl_op_definition
class OrOp(LogicalOp):
    name = "graph.or"


@irdl_op_definition
class XorOp(LogicalOp):
    name = "graph.xor"


# --------------------------------------------------------------- variadic


class ElementwiseVariadicOp(VariadicOp):
    """An n-ary elementwise op with multidirectional broadcasting."""

    def infer_shapes(self, shapes):
        out = shapes[0]
        for s in shapes[1:]:
            out = broadcast_shapes(out, s)
        return [out]

    def infer_dtypes(self, dtypes):
        return [same_dtype(dtypes, self.name)]


@irdl_op_definition
class SumOp(ElementwiseVariadicOp):
    name = "graph.sum"


@irdl_op_definition
class MinOp(ElementwiseVariadicOp):
    name = "graph.min"


@irdl_op_definition
class MaxOp(ElementwiseVariadicOp):
    name = "graph.max"


@irdl_op_definition
class MeanOp(ElementwiseVariadicOp):
    name = "graph.mean"

    def infer_dtypes(self, dtypes):
        d = same_dtype(dtypes, self.name)
        if d not in FLOAT_DTYPES:
            raise DTypeMismatchError(f"operands must be float tensors, got {d.value}")
        return [d]


@irdl_op_definition
class WhereOp(GraphOp):
    """cond ? x : y with broadcasting of all three."""

    name = "graph.where"
    cond = operand_def(TensorType)
    x = operand_def(TensorType)
    y = operand_def(TensorType)
    result = result_def(TensorType)
    assembly_format = "$cond `,` $x `,` $y attr-dict `:` functional-type(operands, results)"

    def __init__(self, cond, x, y, result_type: TensorType):
        super().__init__(operands=[cond, x, y], result_types=[result_type])

    def infer_shapes(self, shapes):
        return [broadcast_shapes(broadcast_shapes(shapes[0], shapes[1]), shapes[2])]

    def infer_dtypes(self, dtypes):
        if dtypes[0] is not DType.BOOL:
            raise DTypeMismatchError(f"condition must be bool, got {dtypes[0].value}")
        return [same_dtype(dtypes[1:], self.name)]


MATH_OPS = [*TRIG_OPS.values(), RoundOp, SoftsignOp, MishOp, SignOp, IsNaNOp, IsInfOp, CeluOp, ShrinkOp,
            ThresholdedReluOp,
            SqrtOp, ExpOp, LogOp, ErfOp, TanhOp, SigmoidOp, ReciprocalOp, FloorOp, CeilOp, SoftplusOp,
            HardSwishOp, NegOp, AbsOp, LeakyReluOp, EluOp, SeluOp, HardSigmoidOp, GeluOp, ClipOp, CastOp,
            NotOp, PowOp, ModOp, PReluOp, EqualOp, LessOp, LessOrEqualOp, GreaterOp, GreaterOrEqualOp, AndOp, OrOp,
            XorOp, SumOp, MinOp, MaxOp, MeanOp, WhereOp]
