"""Reference semantics of the elementwise math ops (see dialects/graph_math.py)."""
from __future__ import annotations

import math
from functools import reduce

import ml_dtypes
import numpy as np

from pyflame_rt.dialects import graph_math as gm
from pyflame_rt.dtype import NARROW_FLOATS, SUB_BYTE_INTS, DType
from pyflame_rt.dialects.reference.core import check_divisor
from pyflame_rt.dialects.reference.evaluator import ACTIVATION_REFERENCES, reference

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid(x):
    return np.exp(-np.logaddexp(np.zeros((), x.dtype), -x))


def _hard_swish(x):
    return x * np.clip(x / 6 + 0.5, 0, 1)


def _leaky_relu_of(x, alpha: float):
    return np.where(x >= 0, x, alpha * x)


def _hard_sigmoid_of(x, alpha: float, beta: float):
    return np.clip(alpha * x + beta, 0, 1)


def _gelu_of(v, tanh: bool = False):
    if tanh:
        return 0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))
    return 0.5 * v * (1 + _erf(v / math.sqrt(2)))


def _clip_of(x, lo: float, hi: float):
    return np.minimum(np.maximum(x, lo), hi)


ACTIVATION_REFERENCES.update({
    "relu": lambda x: np.maximum(x, np.zeros((), x.dtype)), "relu6": lambda x: _clip_of(x, 0, 6),
    "clip": _clip_of, "leaky_relu": _leaky_relu_of, "sigmoid": _sigmoid, "tanh": np.tanh,
    "hard_sigmoid": _hard_sigmoid_of, "hard_swish": _hard_swish, "gelu": _gelu_of,
    "gelu_tanh": lambda x: _gelu_of(x, tanh=True)})


def _attr(op, name: str) -> float:
    return getattr(op, name).value.data


_UNARY = {
    gm.SqrtOp: np.sqrt, gm.ExpOp: np.exp, gm.LogOp: np.log, gm.TanhOp: np.tanh, gm.SigmoidOp: _sigmoid,
    gm.ReciprocalOp: np.reciprocal, gm.FloorOp: np.floor, gm.CeilOp: np.ceil, gm.NegOp: np.negative,
    gm.AbsOp: np.abs, gm.NotOp: np.logical_not, gm.ErfOp: _erf,
    gm.SoftplusOp: lambda x: np.logaddexp(np.zeros((), x.dtype), x),
    gm.HardSwishOp: _hard_swish,
    gm.RoundOp: np.round, gm.SignOp: np.sign, gm.IsNaNOp: np.isnan, gm.SoftsignOp: lambda x: x / (1 + np.abs(x)),
    gm.MishOp: lambda x: x * np.tanh(np.logaddexp(np.zeros((), x.dtype), x)),
    **{op: getattr(np, "arc" + f[1:] if f.startswith("a") else f) for f, op in gm.TRIG_OPS.items()},
}


@reference(*_UNARY)
def _unary(op, x):
    return _UNARY[type(op)](x[0])


@reference(gm.LeakyReluOp)
def _leaky_relu(op, x):
    return _leaky_relu_of(x[0], _attr(op, "alpha"))


@reference(gm.EluOp)
def _elu(op, x):
    return np.where(x[0] >= 0, x[0], _attr(op, "alpha") * np.expm1(np.minimum(x[0], 0)))


@reference(gm.SeluOp)
def _selu(op, x):
    neg = _attr(op, "alpha") * np.expm1(np.minimum(x[0], 0))
    return _attr(op, "gamma") * np.where(x[0] > 0, x[0], neg)


@reference(gm.IsInfOp)
def _is_inf(op, x):
    return ((x[0] == np.inf) & op.detect_positive.value.data) | ((x[0] == -np.inf) & op.detect_negative.value.data)


@reference(gm.CeluOp)
def _celu(op, x):
    alpha = _attr(op, "alpha")
    return np.maximum(x[0], 0) + np.minimum(0, alpha * np.expm1(np.minimum(x[0], 0) / alpha))


@reference(gm.ShrinkOp)
def _shrink(op, x):
    lambd, bias = _attr(op, "lambd"), _attr(op, "bias")
    return np.where(x[0] < -lambd, x[0] + bias, np.where(x[0] > lambd, x[0] - bias, 0)).astype(x[0].dtype)


@reference(gm.ThresholdedReluOp)
def _thresholded_relu(op, x):
    return np.where(x[0] > _attr(op, "alpha"), x[0], 0).astype(x[0].dtype)


@reference(gm.HardSigmoidOp)
def _hard_sigmoid(op, x):
    return _hard_sigmoid_of(x[0], _attr(op, "alpha"), _attr(op, "beta"))


@reference(gm.GeluOp)
def _gelu(op, x):
    return _gelu_of(x[0], tanh=op.approximate.data == "tanh")


@reference(gm.ClipOp)
def _clip(op, x):
    return _clip_of(x[0], *op.bounds())


_FLOAT_DTYPES = (DType.FLOAT32, DType.FLOAT64, DType.FLOAT16, DType.BFLOAT16)


def _compute_numpy(dtype: DType) -> np.dtype:
    """The type the CPU kernels compute a dtype in: float16 / bfloat16 / float8 / float4 in float32,
    int4 / uint4 / int2 / uint2 in 8 bits."""
    if dtype in (DType.FLOAT16, DType.BFLOAT16, *NARROW_FLOATS):
        return np.dtype(np.float32)
    if dtype in SUB_BYTE_INTS:
        return np.dtype(np.uint8 if dtype.value.startswith("u") else np.int8)
    return dtype.numpy


def cast_array(x: np.ndarray, to: DType, saturate: bool = True, round_mode: str = "up") -> np.ndarray:
    """ONNX Cast with the compiled kernels' semantics (targets/cpu/kernels/typed.py, `convert`), so a
    folded Cast gives the bits a compiled one would: to bool is x != 0; float to integer truncates
    toward zero and saturates, NaN -> 0 (to int4 / int2 / ...: then the high bits dropped);
    floats and integers convert through their compute types, so float64 -> float16 rounds via
    float32 as the kernel does; integers narrow by wrapping. To float8 / float4: rounded once to
    nearest even, `saturate` clamping to the largest finite value (float4 always); float8e8m0 takes
    the float32 exponent rounded by `round_mode`."""
    x = np.asarray(x)
    src = DType.from_numpy(x.dtype)
    if to is DType.BOOL:
        return np.asarray(x != 0)
    if src in (*NARROW_FLOATS, *SUB_BYTE_INTS):  # widened exactly
        x = x.astype(_compute_numpy(src))
        src = DType.from_numpy(x.dtype)
    if to is DType.FLOAT8E8M0:
        return _to_e8m0(x.astype(np.float32), saturate, round_mode)
    if to in NARROW_FLOATS:
        wide = x if src in (DType.FLOAT32, DType.FLOAT64) else x.astype(np.float32)
        if saturate:
            limit = float(ml_dtypes.finfo(to.numpy).max)
            wide = np.clip(wide, -limit, limit)
        with np.errstate(over="ignore", invalid="ignore"):
            return wide.astype(to.numpy)
    if to in SUB_BYTE_INTS and src in _FLOAT_DTYPES:  # as float -> int32, then the high bits dropped
        wide = cast_array(x, DType.INT32).astype(np.int64)
        bits = SUB_BYTE_INTS[to]
        low = wide & ((1 << bits) - 1)
        if ml_dtypes.iinfo(to.numpy).min < 0:
            low = np.where(low >= 1 << (bits - 1), low - (1 << bits), low)
        return low.astype(to.numpy)
    if src is DType.BOOL or src not in _FLOAT_DTYPES:
        return x.astype(_compute_numpy(to)).astype(to.numpy)
    if to in _FLOAT_DTYPES:
        with np.errstate(over="ignore"):  # out of range -> inf, as in the kernel
            return x.astype(_compute_numpy(src)).astype(_compute_numpy(to)).astype(to.numpy)
    info = np.iinfo(to.numpy)
    lo, hi = float(info.min), float(info.max + 1)  # powers of two: exact as floats
    t = np.trunc(x.astype(np.float64))
    inside = np.where(np.isnan(t) | (t < lo) | (t >= hi), 0.0, t).astype(to.numpy)
    return np.where(t >= hi, info.max, np.where(t < lo, info.min, inside)).astype(to.numpy)


def _to_e8m0(x: np.ndarray, saturate: bool, round_mode: str) -> np.ndarray:
    """The float32 exponent field, rounded up by a nonzero mantissa ("up") or by its guard bit with
    ties up ("nearest"), not past 254 when `saturate`; Inf and NaN -> 255 (NaN); sign ignored."""
    bits = x.view(np.uint32)
    e = ((bits >> 23) & 0xFF).astype(np.uint32)
    if round_mode == "up":
        up = (bits & 0x7FFFFF) != 0
    elif round_mode == "nearest":
        up = ((bits & 0x400000) != 0) & (((bits & 0x3FFFFF) != 0) | (e != 0))
    else:
        up = np.zeros(x.shape, bool)
    if saturate:
        up &= e != 0xFE
    code = np.where(e == 0xFF, 0xFF, e + up).astype(np.uint8)
    return code.view(DType.FLOAT8E8M0.numpy)


@reference(gm.CastOp)
def _cast(op, x):
    return cast_array(x[0], DType(op.to.data), bool(op.saturate.value.data), op.round_mode.data)


_BINARY = {
    gm.EqualOp: np.equal, gm.LessOp: np.less, gm.LessOrEqualOp: np.less_equal,
    gm.GreaterOp: np.greater, gm.GreaterOrEqualOp: np.greater_equal, gm.AndOp: np.logical_and,
    gm.OrOp: np.logical_or, gm.XorOp: np.logical_xor,
    gm.PReluOp: lambda x, slope: np.where(x < 0, slope * x, x),
}


@reference(*_BINARY)
def _binary(op, x):
    return _BINARY[type(op)](x[0], x[1])


@reference(gm.ModOp)
def _mod(op, x):
    check_divisor(x[1], "modulo")
    with np.errstate(divide="ignore", invalid="ignore"):  # float x mod 0 is NaN
        return (np.fmod if op.fmod.value.data else np.mod)(x[0], x[1])


@reference(gm.PowOp)
def _pow(op, x):
    base, exponent = x
    if not np.issubdtype(base.dtype, np.integer):
        return np.power(base, exponent)
    if np.issubdtype(exponent.dtype, np.integer):  # exact; a negative exponent truncates 1 / x**|e|
        positive = np.power(base, np.maximum(exponent, 0).astype(base.dtype))
        inverse = np.where(base == 1, 1, np.where(base == -1, np.where(exponent % 2 == 1, -1, 1), 0))
        return np.where(exponent < 0, inverse, positive).astype(base.dtype)
    with np.errstate(invalid="ignore", over="ignore"):  # float exponent: float pow truncated to the type
        return np.power(base.astype(np.float64), exponent.astype(np.float64)).astype(base.dtype)


_VARIADIC = {gm.SumOp: np.add, gm.MinOp: np.minimum, gm.MaxOp: np.maximum, gm.MeanOp: np.add}


@reference(*_VARIADIC)
def _variadic(op, x):
    out = reduce(_VARIADIC[type(op)], x)
    return out / len(x) if isinstance(op, gm.MeanOp) else out


@reference(gm.WhereOp)
def _where(op, x):
    return np.where(x[0], x[1], x[2])
