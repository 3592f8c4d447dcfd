"""Elementwise kernels with broadcasting, vectorized along the innermost dim.

The output is iterated as rows x inner. Each row's input offsets come from the
collapsed outer dims and per-input strides (0 = broadcast), all runtime values,
so one kernel serves every batch size. Work items are (row, inner chunk) pairs.
Kernels are specialized on the element types of the inputs and the output: each
op's body is written once against `Typed` (see typed.py) and works for float,
integer and bool tensors alike where the op allows it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import reduce
from math import sqrt
from typing import Callable

import numpy as np
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import i1, i64
from xdsl.ir import SSAValue

from pyflame_rt.dialects.graph_attrs import ActivationAttr, RoundMode
from pyflame_rt.dtype import DType
from pyflame_rt.errors import UnsupportedOperatorError
from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature
from pyflame_rt.targets.cpu.kernels import fast_math as fm, fast_trig as ft
from pyflame_rt.targets.cpu.kernels.typed import FLOAT_DTYPES, SINGLE_PRECISION, Typed

INNER_CHUNK = 8192  # elements per work item along the inner dim

Body = Callable[[Typed, list[SSAValue], tuple], SSAValue]


@dataclass(frozen=True)
class EwOp:
    """An elementwise op: arity (None = variadic), body over compute values, result kind.

    result: "same" (the compute type of input `typed_by`), "bool", or "out" (the output's
    type, for Cast / fill). float_only ops reject integer inputs, and float64 unless `double`
    (their body has a double-precision form). `divides`: on integers, input 1 is a divisor
    that must not be 0 (the kernel reports it; its body never traps).
    """

    arity: int | None
    body: Body
    result: str = "same"
    typed_by: int = 0
    float_only: bool = False
    double: bool = False
    divides: bool = False
    narrows: bool = False  # params, if any, are how the output narrows: (saturate, RoundMode index)


def _unary(fn, float_only=True, double=False) -> EwOp:
    return EwOp(1, lambda t, x, p: fn(t, x[0], p), float_only=float_only, double=double)


def _clamp(t: Typed, x, lo, hi):
    """min(max(x, lo), hi) as onnxruntime's Clip computes it: NaN stays NaN."""
    return t.at_most(t.at_least(x, t.const(lo)), t.const(hi))


def _where_positive(t: Typed, x, negative):
    return t.select(t.cmp("gt", x, t.const(0)), x, negative)


def _gelu(t: Typed, x, p):
    half_x = t.mul(x, t.const(0.5))
    if p[0]:  # approximate="tanh"
        inner = t.mul(t.const(sqrt(2 / 3.141592653589793)), t.fma(t.mul(t.mul(x, x), x), t.const(0.044715), x))
        return t.fma(half_x, fm.tanh(t, inner), half_x)
    return t.fma(half_x, fm.erf(t, t.mul(x, t.const(1 / sqrt(2)))), half_x)


def _float_pow(t: Typed, x, y):
    """x**y = exp(y log|x|) with C's pow special cases (as onnxruntime): the sign of x (also -0,
    -inf) for an odd integer y, NaN for a finite negative x and a non-integer y, and 1 for y = 0,
    x = 1 (even with a NaN y) and x = -1 with y = +-inf. float64: C's pow itself (exp(y log|x|)
    would lose |y log x| ulps)."""
    kb = t.kb
    if t.dtype is DType.FLOAT64:
        return kb.intrinsic("llvm.pow", x, y)
    mag = fm.exp(t, t.mul(y, fm.log(t, t.abs(x))))
    y_int = t.cmp("eq", kb.intrinsic("llvm.floor", y), y)
    half = t.mul(y, t.const(0.5))
    y_odd = kb.and_(y_int, t.cmp("ne", kb.intrinsic("llvm.floor", half), half))
    sign_negative = t.cmp("lt", kb.intrinsic("llvm.copysign", t.const(1.0), x), t.const(0.0))
    out = t.select(kb.and_(y_odd, sign_negative), t.neg(mag), mag)
    finite_negative = kb.and_(t.cmp("lt", x, t.const(0.0)), t.cmp("gt", x, t.const(float("-inf"))))
    out = t.select(kb.and_(finite_negative, t.logical_not(y_int)), t.const(float("nan")), out)
    minus_one_infinite = kb.and_(t.cmp("eq", x, t.const(-1.0)), t.cmp("eq", t.abs(y), t.const(float("inf"))))
    one = kb.or_(kb.or_(t.cmp("eq", y, t.const(0.0)), t.cmp("eq", x, t.const(1.0))), minus_one_infinite)
    return t.select(one, t.const(1.0), out)


def _int_pow(t: Typed, x, e, te: Typed):
    """Exact integer power (wrapping like the type) by repeated squaring over all of e's bits;
    a negative e gives 1 / x**|e| truncated: 1 for x = 1, +-1 for x = -1, else 0."""
    kb = t.kb
    result, square = t.const(1), x
    for bit in range(te.elem.bitwidth - 1):
        set_ = te.cmp("ne", kb._ins(arith.AndIOp(e, te.const(1 << bit))), te.const(0))
        result = t.select(set_, t.mul(result, square), result)
        square = t.mul(square, square)
    odd = te.cmp("ne", kb._ins(arith.AndIOp(e, te.const(1))), te.const(0))
    minus_one = t.cmp("eq", x, t.const(-1))
    inverse = t.select(t.cmp("eq", x, t.const(1)), t.const(1),
                       t.select(minus_one, t.select(odd, t.const(-1), t.const(1)), t.const(0)))
    return t.select(te.cmp("lt", e, te.const(0)), inverse, result)


def _softplus(t: Typed, x):
    """log(1 + e**x) = max(x, 0) + log1p(e**-|x|) (no overflow, no cancellation for large |x|)."""
    return t.add(t.max(x, t.const(0.0)), _log1p(t, fm.exp(t, t.neg(t.abs(x)))))


def _log1p(t: Typed, u):
    """log(1 + u) as log(w) * u / (w - 1), w = 1 + u rounded: the rounding error of w cancels."""
    w = t.add(t.const(1.0), u)
    d = t.sub(w, t.const(1.0))
    return t.select(t.cmp("eq", d, t.const(0.0)), u, t.mul(fm.log(t, w), t.div(u, d)))


def _pow(t: Typed, x, y):
    """Float base: _float_pow (the importer gives the exponent the base's type). Integer base (ONNX:
    the result has the base's type): an int64 exponent, or a float one, which is exact when it holds
    an integer and otherwise float32 pow truncated toward zero."""
    if t.is_float:
        return _float_pow(t, x, y)
    te = t.of_value(y)
    if not te.is_float:
        return _int_pow(t, x, y, te)
    f32 = t.like(DType.FLOAT32)
    yf = te.convert(y, f32)
    e = te.convert(y, t.like(DType.INT64))
    integral = te.cmp("eq", t.kb.intrinsic("llvm.floor", y), y)
    fractional = f32.convert(_float_pow(f32, t.convert(x, f32), yf), t)
    return t.select(integral, _int_pow(t, x, e, t.like(DType.INT64)), fractional)


def _mod(t: Typed, x, y, fmod: bool):
    """fmod: C's fmod (the dividend's sign); otherwise modulo with the divisor's sign (Python's %).
    Float fmod is x - trunc(x / y) * y in one rounding (x itself when the quotient is 0, e.g. y = inf),
    corrected when the quotient rounded up; zeros take the sign the result would have."""
    if not t.is_float:
        return t.rem(x, y, floored=not fmod)
    kb = t.kb
    q = kb.intrinsic("llvm.trunc", t.div(x, y))
    r = t.select(t.cmp("eq", q, t.const(0.0)), x, t.fma(t.neg(q), y, x))
    overshot = t.cmp("lt", t.mul(r, x), t.const(0.0))
    r = kb.intrinsic("llvm.copysign", t.select(overshot, t.add(r, kb.intrinsic("llvm.copysign", y, x)), r), x)
    if fmod:
        return r
    r = t.select(t.cmp("lt", t.mul(r, y), t.const(0.0)), t.add(r, y), r)
    return t.select(t.cmp("eq", r, t.const(0.0)), kb.intrinsic("llvm.copysign", r, y), r)


def _sign(t: Typed, x, p):
    one, zero = t.const(1), t.const(0)
    s = t.select(t.cmp("gt", x, zero), one, t.select(t.cmp("lt", x, zero), t.const(-1), zero))
    return t.select(t.isnan(x), x, s) if t.is_float else s


def _isinf(t: Typed, x, p):
    """p = (detect_positive, detect_negative)."""
    inf = float("inf")
    pos, neg = t.cmp("eq", x, t.const(inf)), t.cmp("eq", x, t.const(-inf))
    if p[0] and p[1]:
        return t.kb._ins(arith.OrIOp(pos, neg))
    return pos if p[0] else neg if p[1] else t.kb._ins(arith.AndIOp(pos, neg))


def _shift(t: Typed, x, y, left: bool):
    """ONNX BitShift: amounts outside [0, bits) leave only the sign fill (-1 for a negative x
    shifted right, else 0); a signed right shift is arithmetic."""
    kb = t.kb
    in_range = kb._ins(arith.AndIOp(t.cmp("ge", y, t.const(0)), t.cmp("lt", y, t.const(t.elem.bitwidth))))
    safe = t.select(in_range, y, t.const(0))
    op = arith.ShLIOp if left else arith.ShRUIOp if t.unsigned else arith.ShRSIOp
    fill = t.select(t.cmp("lt", x, t.const(0)), t.const(-1), t.const(0)) if not (left or t.unsigned) else t.const(0)
    return t.select(in_range, kb._ins(op(x, safe)), fill)


def _integer(op_cls) -> EwOp:
    return EwOp(2, lambda t, x, p: t.kb._ins(op_cls(x[0], x[1])))


def _logical(op_cls) -> EwOp:
    return EwOp(2, lambda t, x, p: t.kb._ins(op_cls(x[0], x[1])), result="bool")


def _compare(pred: str) -> EwOp:
    return EwOp(2, lambda t, x, p: t.cmp(pred, x[0], x[1]), result="bool")


# op name -> EwOp. Bodies get the Typed of input `typed_by`, the loaded inputs and the params.
ELEMENTWISE_OPS: dict[str, EwOp] = {
    "add": EwOp(2, lambda t, x, p: t.add(x[0], x[1])),
    "sub": EwOp(2, lambda t, x, p: t.sub(x[0], x[1])),
    "mul": EwOp(2, lambda t, x, p: t.mul(x[0], x[1])),
    "div": EwOp(2, lambda t, x, p: t.div(x[0], x[1]), divides=True),
    "mul_add": EwOp(3, lambda t, x, p: t.fma(x[0], x[1], x[2])),
    "scaled_add": EwOp(2, lambda t, x, p: t.fma(x[0], t.const(p[0]), x[1])),  # x0 * p0 + x1
    "pow": EwOp(2, lambda t, x, p: _pow(t, x[0], x[1])),
    "mod": EwOp(2, lambda t, x, p: _mod(t, x[0], x[1], bool(p[0])), divides=True),
    "prelu": EwOp(2, lambda t, x, p: _where_positive(t, x[0], t.mul(x[0], x[1]))),
    "sum": EwOp(None, lambda t, x, p: reduce(t.add, x)),
    "mean": EwOp(None, lambda t, x, p: t.mul(reduce(t.add, x), t.const(1.0 / len(x))), float_only=True,
                 double=True),
    "min": EwOp(None, lambda t, x, p: reduce(t.min, x)),
    "max": EwOp(None, lambda t, x, p: reduce(t.max, x)),
    "relu": _unary(lambda t, x, p: t.at_least(x, t.const(0)), float_only=False),
    "relu6": _unary(lambda t, x, p: _clamp(t, x, 0, 6), float_only=False),
    "scale": _unary(lambda t, x, p: t.mul(x, t.const(p[0])), double=True),
    "neg": _unary(lambda t, x, p: t.neg(x), float_only=False),
    "abs": _unary(lambda t, x, p: t.abs(x), float_only=False),
    "copy": _unary(lambda t, x, p: x, float_only=False),
    "sqrt": _unary(lambda t, x, p: t.kb.intrinsic("llvm.sqrt", x), double=True),
    "floor": _unary(lambda t, x, p: t.kb.intrinsic("llvm.floor", x), double=True),
    "ceil": _unary(lambda t, x, p: t.kb.intrinsic("llvm.ceil", x), double=True),
    "reciprocal": _unary(lambda t, x, p: t.div(t.const(1.0), x), double=True),
    "round": _unary(lambda t, x, p: t.kb.intrinsic("llvm.roundeven", x), double=True),
    "sign": _unary(_sign, float_only=False),
    "isnan": EwOp(1, lambda t, x, p: t.isnan(x[0]), result="bool", float_only=True, double=True),
    "isinf": EwOp(1, lambda t, x, p: _isinf(t, x[0], p), result="bool", float_only=True, double=True),
    "softsign": _unary(lambda t, x, p: t.div(x, t.add(t.const(1.0), t.abs(x))), double=True),
    "celu": _unary(lambda t, x, p: t.add(t.max(x, t.const(0.0)), t.min(t.const(0.0), t.mul(
        t.const(p[0]), t.sub(fm.exp(t, t.mul(x, t.const(1.0 / p[0]))), t.const(1.0))))), double=True),
    "mish": _unary(lambda t, x, p: t.mul(x, fm.tanh(t, _softplus(t, x))), double=True),
    "shrink": _unary(lambda t, x, p: t.select(t.cmp("lt", x, t.const(-p[0])), t.add(x, t.const(p[1])), t.select(
        t.cmp("gt", x, t.const(p[0])), t.sub(x, t.const(p[1])), t.const(0.0))), double=True),
    "thresholded_relu": _unary(lambda t, x, p: t.select(t.cmp("gt", x, t.const(p[0])), x, t.const(0.0)),
                               double=True),
    **{name: _unary(lambda t, x, p, fn=getattr(ft, name): fn(t, x), double=True)
       for name in ft.FUNCTIONS},
    "bitwise_and": _integer(arith.AndIOp),
    "bitwise_or": _integer(arith.OrIOp),
    "bitwise_xor": _integer(arith.XOrIOp),
    "bitwise_not": _unary(lambda t, x, p: t.kb._ins(arith.XOrIOp(x, t.const(-1))), float_only=False),
    "shift_left": EwOp(2, lambda t, x, p: _shift(t, x[0], x[1], left=True)),
    "shift_right": EwOp(2, lambda t, x, p: _shift(t, x[0], x[1], left=False)),
    "exp": _unary(lambda t, x, p: fm.exp(t, x), double=True),
    "log": _unary(lambda t, x, p: fm.log(t, x), double=True),
    "tanh": _unary(lambda t, x, p: fm.tanh(t, x), double=True),
    "sigmoid": _unary(lambda t, x, p: fm.sigmoid(t, x), double=True),
    "erf": _unary(lambda t, x, p: fm.erf(t, x), double=True),
    "gelu": _unary(_gelu, double=True),
    "softplus": _unary(lambda t, x, p: _softplus(t, x), double=True),
    "leaky_relu": _unary(lambda t, x, p: _where_positive(t, x, t.mul(x, t.const(p[0]))), double=True),
    "elu": _unary(lambda t, x, p: _where_positive(t, x, t.mul(t.const(p[0]), t.sub(fm.exp(t, x), t.const(1.0)))),
                  double=True),
    "selu": _unary(lambda t, x, p: t.mul(t.const(p[1]), _where_positive(
        t, x, t.mul(t.const(p[0]), t.sub(fm.exp(t, x), t.const(1.0))))), double=True),
    "hard_sigmoid": _unary(lambda t, x, p: _clamp(t, t.fma(x, t.const(p[0]), t.const(p[1])), 0.0, 1.0),
                           double=True),
    "hard_swish": _unary(lambda t, x, p: t.mul(x, _clamp(t, t.fma(x, t.const(1 / 6), t.const(0.5)), 0.0, 1.0)),
                         double=True),
    "clip": _unary(lambda t, x, p: _clamp(t, x, p[0], p[1]), float_only=False),
    "equal": _compare("eq"),
    "less": _compare("lt"),
    "less_equal": _compare("le"),
    "greater": _compare("gt"),
    "greater_equal": _compare("ge"),
    "and": _logical(arith.AndIOp),
    "or": _logical(arith.OrIOp),
    "xor": _logical(arith.XOrIOp),
    "not": EwOp(1, lambda t, x, p: t.logical_not(x[0]), result="bool"),
    "where": EwOp(3, lambda t, x, p: t.select(x[0], x[1], x[2]), typed_by=1),
    "cast": EwOp(1, lambda t, x, p: x[0], result="out", narrows=True),
    "fill": EwOp(0, lambda t, x, p: t.const(p[0]), result="out"),
}


# graph activations (fused epilogues) whose elementwise op has another name or other parameters
_ACTIVATION_OPS = {"gelu": ("gelu", (False,)), "gelu_tanh": ("gelu", (True,))}


def activation_spelling(activation: ActivationAttr | None) -> str | None:
    """How kernel specs name a graph activation: "relu", "leaky_relu(0.01)", "clip(-1.0, inf)" (float32
    parameters, shortest round-trip form); None for none."""
    if activation is None:
        return None
    params = activation.values
    return activation.activation.value + (f"({', '.join(str(np.float32(p)) for p in params)})" if params else "")


def _activation_parts(spelling: str) -> tuple[str, tuple[float, ...]]:
    """(name, params) of an activation_spelling."""
    name, _, params = spelling.removesuffix(")").partition("(")
    return name, tuple(float(p) for p in params.split(",")) if params else ()


def apply_activation(t: Typed, activation: str | None, v: SSAValue) -> SSAValue:
    """An activation_spelling applied to v in `t`'s compute type, with the elementwise op's body so
    a fused epilogue computes what the unfused op would; "none" / None: v."""
    if activation in (None, "none"):
        return v
    name, params = _activation_parts(activation)
    op, params = _ACTIVATION_OPS.get(name, (name, params))
    return ELEMENTWISE_OPS[op].body(t, [v], params)


def epilogue(kb: KernelBuilder, activation: str, v: SSAValue, width: int = 1,
             dtype: DType = DType.FLOAT32) -> SSAValue:
    """The activation of a float32 (or float64) scalar or `width`-vector (GEMM, window and plane
    epilogues): the elementwise op's body, so NaN propagates as in the unfused op (relu and the
    clamps are one max / min instruction each: `Typed.at_least`)."""
    return apply_activation(Typed(kb, dtype, width), activation, v)


def activation_tag(activation: str | None) -> str:
    """An activation's part of a kernel name: symbol-safe, the parameters hashed."""
    if activation in (None, "none"):
        return "none"
    name, params = _activation_parts(activation)
    return f"{name}_p{hashlib.sha1(repr(params).encode()).hexdigest()[:8]}" if params else name


@dataclass(frozen=True)
class ElementwiseSpec:
    """What a generated kernel is specialized on (its cache key)."""

    op: str
    outer_rank: int                 # number of collapsed outer dims
    inner: tuple[str, ...]          # per input, its inner stride: "v" 1, "s" 0 (broadcast), "g" any
    width: int                      # 1 when an input is "g" (strided gathers stay scalar)
    in_dtypes: tuple[DType, ...] = ()   # per input; empty = all float32
    out_dtype: DType = DType.FLOAT32
    params: tuple[float, ...] = ()      # op attributes baked into the kernel (alpha, bounds, ...)
    activation: str | None = None       # an activation_spelling applied to the result (fused)

    @property
    def dtypes(self) -> tuple[DType, ...]:
        return self.in_dtypes or (DType.FLOAT32,) * len(self.inner)

    @property
    def name(self) -> str:
        pattern = "".join(self.inner)
        types = "_".join(d.value for d in (*self.dtypes, self.out_dtype))
        params = f"_p{hashlib.sha1(repr(self.params).encode()).hexdigest()[:8]}" if self.params else ""
        op = f"{self.op}_{activation_tag(self.activation)}" if self.activation else self.op
        return f"ew_{op}_r{self.outer_rank}_{pattern}_w{self.width}_{types}{params}"

    @property
    def checks_divisor(self) -> bool:
        """An integer Div / Mod: a zero divisor stores the kernel's status code."""
        return ELEMENTWISE_OPS[self.op].divides and self.dtypes[1] not in FLOAT_DTYPES

    @property
    def signature(self) -> Signature:
        """out, the inputs, inner, nchunks, each input's inner stride, then per outer dim (outermost
        first) its size and each input's stride, then (checks_divisor) the status word and the code."""
        ins = [f"in{i}" for i in range(len(self.inner))]
        dims = [f for d in range(self.outer_rank) for f in (f"size{d}", *(f"{x}_stride{d}" for x in ins))]
        status = ("status", "code") if self.checks_divisor else ()
        return Signature.of(("out", *ins, "inner", "nchunks", *(f"{x}_inner_stride" for x in ins), *dims, *status),
                            buffers=("out", *ins, *status[:1]))


def check_elementwise(op: str, in_dtypes: tuple[DType, ...]) -> None:
    """Reject what no kernel can compute (a float-only op on integers) before generating code."""
    ew = ELEMENTWISE_OPS[op]
    if ew.arity is not None and ew.arity != len(in_dtypes):
        raise UnsupportedOperatorError(f"elementwise {op} takes {ew.arity} inputs, got {len(in_dtypes)}")
    if ew.float_only and in_dtypes and in_dtypes[ew.typed_by] not in SINGLE_PRECISION and not (
            ew.double and in_dtypes[ew.typed_by] is DType.FLOAT64):
        raise UnsupportedOperatorError(
            f"{op} needs float32/float16/bfloat16 tensors, got {in_dtypes[ew.typed_by].value}")


def _narrowing(params: tuple) -> tuple:
    """Typed's (saturate, round_mode) from a Cast's kernel params (none: the defaults)."""
    return (bool(params[0]), list(RoundMode)[params[1]].value) if params else ()


def _flag_zero(t: Typed, divisor: SSAValue, status: SSAValue, code: SSAValue) -> None:
    """*status = code if a lane of the divisor is 0."""
    kb = t.kb
    zero = t.cmp("eq", divisor, t.const(0))
    if t.width > 1:
        zero = kb.intrinsic("llvm.vector.reduce.or", zero, result_type=i1, overloads=[zero.type])
    with kb.if_(zero):
        kb.store(code, status, kb.const(0), elem=i64)


def elementwise_kernel(spec: ElementwiseSpec) -> func.FuncOp:
    ew = ELEMENTWISE_OPS[spec.op]
    dtypes = spec.dtypes
    check_elementwise(spec.op, dtypes)
    n_in = len(spec.inner)
    kb = KernelBuilder(spec.name, spec.signature)
    f = kb.fields
    out, inner, nchunks = f["out"], f["inner"], f["nchunks"]
    ins = [f[f"in{i}"] for i in range(n_in)]
    inner_strides = [f[f"in{i}_inner_stride"] for i in range(n_in)]
    dims = [(f[f"size{d}"], [f[f"in{i}_stride{d}"] for i in range(n_in)]) for d in range(spec.outer_rank)]
    chunk = kb.const(INNER_CHUNK)
    if spec.checks_divisor:
        status, code = f["status"], f["code"]

    with kb.loop(kb.begin, kb.end) as item:
        row = kb.div(item.iv, nchunks)
        c = kb.rem(item.iv, nchunks)
        # decompose the row index over the outer dims (innermost last)
        offs = [kb.const(0) for _ in range(n_in)]
        rest = row
        for size, strides in reversed(dims):
            idx = kb.rem(rest, size)
            rest = kb.div(rest, size)
            offs = [kb.add(o, kb.mul(idx, s)) for o, s in zip(offs, strides)]
        lo = kb.mul(c, chunk)
        hi = kb.min(kb.add(lo, chunk), inner)
        out_row = kb.mul(row, inner)

        def step(iv, w):
            ts = [Typed(kb, d, w) for d in dtypes]
            to = Typed(kb, spec.out_dtype, w, *(_narrowing(spec.params) if ew.narrows else ()))
            vals = []
            for t, p, o, mode, stride in zip(ts, ins, offs, spec.inner, inner_strides):
                index = {"v": lambda: kb.add(o, iv), "s": lambda: o, "g": lambda: kb.add(o, kb.mul(iv, stride))}
                vals.append(t.load(p, index[mode](), splat=mode == "s"))
            t = ts[ew.typed_by] if ts else to
            if spec.checks_divisor:
                _flag_zero(ts[1], vals[1], status, code)
            result = ew.body(t, vals, spec.params)
            result = apply_activation(t, spec.activation, result)
            if ew.result == "out" and ts:
                result = t.convert(result, to)
            to.store(result, out, kb.add(out_row, iv))

        kb.strip_mined(lo, hi, spec.width, step)
    return kb.finish()
