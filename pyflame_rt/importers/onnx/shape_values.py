"""Import-time evaluation of shape subgraphs over symbolic dims.

Exporters compute reshape targets at run time: Shape -> Gather -> Unsqueeze -> Concat ->
Reshape, with the dynamic batch / sequence dims flowing through. The importer knows
every value's symbolic shape, so these small integer tensors are evaluated here, as
numpy object arrays whose elements are ints or `SymDim`s: they never need kernels.
A node is evaluated when an evaluator exists for its type and all its inputs are
known (Shape / Size only need their input's shape); anything not expressible (e.g.
batch + 1) raises `NotEvaluable` and the node is converted normally instead.
Consumers (Reshape, Expand, ConstantOfShape, Range) read the symbolic values with
`_NodeContext.sym_input`; a known value used as data is materialized on demand.
"""
from __future__ import annotations

from math import prod
from typing import Callable

import numpy as np
import onnx

from pyflame_rt.dialects.symbolic import SymDim, dim_div, dim_mul, numel
from pyflame_rt.dtype import DType

MAX_ELEMENTS = 1024  # larger integer tensors are data, not shapes
# ops whose result depends only on their input's (always known) shape: never converted to kernels
SHAPE_QUERIES = ("Shape", "Size")


class NotEvaluable(Exception):
    """The node's result cannot be expressed with ints and SymDim monomials."""


class Known:
    """An integer (or bool) tensor whose elements are ints or SymDims."""

    def __init__(self, values: np.ndarray, dtype: DType):
        self.values = np.asarray(values, dtype=object)
        self.dtype = dtype

    @property
    def is_static(self) -> bool:
        return all(isinstance(v, (int, np.integer, bool, np.bool_)) for v in self.values.flat)

    def array(self) -> np.ndarray:
        return self.values.astype(self.dtype.numpy)


Evaluator = Callable[["EvalContext"], list[Known]]
_EVALUATORS: dict[str, Evaluator] = {}


def evaluator(*op_types: str):
    def register(fn: Evaluator) -> Evaluator:
        for t in op_types:
            _EVALUATORS[t] = fn
        return fn
    return register


class EvalContext:
    def __init__(self, importer, node: onnx.NodeProto, inputs: list[Known | None]):
        self.importer, self.node, self.inputs = importer, node, inputs
        self.attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def ints(self, i: int) -> list[int] | None:
        """A known input that must be plain ints (axes, indices), or None if absent."""
        if i >= len(self.inputs) or self.inputs[i] is None:
            return None
        if not self.inputs[i].is_static:
            raise NotEvaluable("symbolic axes")
        return [int(v) for v in self.inputs[i].values.flat]


def evaluate(importer, node: onnx.NodeProto) -> list[Known] | None:
    """The node's outputs if it is a shape computation over known values, else None."""
    fn = _EVALUATORS.get(node.op_type)
    if fn is None:
        return None
    inputs = [importer.known_value(n) if n else None for n in node.input]
    needs_all = node.op_type not in SHAPE_QUERIES
    if needs_all and any(n and k is None for n, k in zip(node.input, inputs)):
        return None
    try:
        out = fn(EvalContext(importer, node, inputs))
    except NotEvaluable:
        return None
    if any(k.values.size > MAX_ELEMENTS for k in out):
        return None
    return out


def _i64(values) -> Known:
    return Known(np.asarray(values, dtype=object), DType.INT64)


# ---------------------------------------------------------------- scalar ops on dims


def _add(a, b):
    if isinstance(a, SymDim) or isinstance(b, SymDim):
        if a == 0 or b == 0:
            return b if a == 0 else a
        raise NotEvaluable("sum of symbolic dims")
    return a + b


def _sub(a, b):
    if isinstance(a, SymDim) or isinstance(b, SymDim):
        if b == 0:
            return a
        if a == b:
            return 0
        raise NotEvaluable("difference of symbolic dims")
    return a - b


def _div(a, b):
    if isinstance(a, SymDim) or isinstance(b, SymDim):
        try:
            return dim_div(a, b)
        except Exception:
            raise NotEvaluable("inexact symbolic division") from None
    if b == 0:
        raise NotEvaluable("division by zero")  # left to the Div kernel, which reports it
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q  # truncation, as ONNX integer Div


def _equal(a, b):
    if isinstance(a, SymDim) or isinstance(b, SymDim):
        if a == b:
            return True
        if isinstance(a, int) and a <= 0 or isinstance(b, int) and b <= 0:
            return False  # a dim is never <= 0
        raise NotEvaluable("comparison of symbolic dims")
    return a == b


def _ordered(a, b):
    """(smaller, larger) of two dims, one of them symbolic: known only if equal or one is <= 1."""
    if a == b:
        return a, b
    for lo, hi in ((a, b), (b, a)):
        if isinstance(lo, int) and lo <= 1:  # a dim is >= 1
            return lo, hi
    raise NotEvaluable("comparison of symbolic dims")


def _max(a, b):
    return _ordered(a, b)[1] if isinstance(a, SymDim) or isinstance(b, SymDim) else max(a, b)


def _min(a, b):
    return _ordered(a, b)[0] if isinstance(a, SymDim) or isinstance(b, SymDim) else min(a, b)


def _mod(a, b):
    if isinstance(a, SymDim) or isinstance(b, SymDim):
        if a == b or b == 1:
            return 0
        raise NotEvaluable("remainder of symbolic dims")
    if b == 0:
        raise NotEvaluable("modulo by zero")
    return a % b  # integer Mod (fmod=0): the divisor's sign, as Python's %


def _fmod(a, b):
    """Mod with fmod=1: the dividend's sign, as C's % (dims are positive: symbolic ones as _mod)."""
    if isinstance(a, SymDim) or isinstance(b, SymDim):
        return _mod(a, b)
    r = _mod(abs(a), abs(b))
    return r if a >= 0 else -r


_BINARY = {"Add": _add, "Sub": _sub, "Mul": dim_mul, "Div": _div, "Mod": _mod, "FMod": _fmod, "Equal": _equal,
           "Max": _max, "Min": _min, "And": lambda a, b: bool(a) and bool(b)}


@evaluator(*_BINARY)
def _binary(ctx: EvalContext):
    """Binary ops, and the variadic Max / Min folded left to right (with broadcasting)."""
    op = "FMod" if ctx.node.op_type == "Mod" and ctx.attrs.get("fmod", 0) else ctx.node.op_type
    fn = np.frompyfunc(_BINARY[op], 2, 1)
    out = ctx.inputs[0].values
    for k in ctx.inputs[1:]:
        out = np.asarray(fn(out, k.values), dtype=object)
    return [Known(out, DType.BOOL if ctx.node.op_type in ("Equal", "And") else ctx.inputs[0].dtype)]


_REDUCE = {"ReduceProd": dim_mul, "ReduceSum": _add, "ReduceMax": _max, "ReduceMin": _min}


@evaluator(*_REDUCE)
def _reduce(ctx: EvalContext):
    """Reductions of a shape vector (numel as ReduceProd(Shape(x)), ...); axes from opset 18
    (ReduceSum: 13) are an input."""
    v = ctx.inputs[0].values
    axes_input = ctx.importer.opset >= (13 if ctx.node.op_type == "ReduceSum" else 18)
    axes = ctx.ints(1) if axes_input else ctx.attrs.get("axes")
    if not axes:
        if ctx.attrs.get("noop_with_empty_axes", 0):
            return [ctx.inputs[0]]
        axes = list(range(v.ndim))
    if v.size == 0:
        raise NotEvaluable("reduction of an empty shape vector")  # its identity is the kernel's
    fn = np.frompyfunc(_REDUCE[ctx.node.op_type], 2, 1)
    axes = sorted({a % v.ndim for a in axes})
    for a in axes:  # an object ufunc reduces one axis at a time
        v = np.asarray(fn.reduce(v, axis=a, keepdims=True), dtype=object)
    if not ctx.attrs.get("keepdims", 1):
        v = np.squeeze(v, axis=tuple(axes))
    return [Known(v, ctx.inputs[0].dtype)]


@evaluator("Neg")
def _neg(ctx: EvalContext):
    k = ctx.inputs[0]
    if not k.is_static:
        raise NotEvaluable("negative symbolic dim")
    return [Known(-k.values, k.dtype)]


@evaluator("Range")
def _range(ctx: EvalContext):
    start, limit, delta = (ctx.ints(i)[0] for i in range(3))
    if delta == 0 or -(-(limit - start) // delta) > MAX_ELEMENTS:
        raise NotEvaluable("not a shape vector")  # the Range converter handles (or refuses) it
    return [Known(np.arange(start, limit, delta).astype(object), ctx.inputs[0].dtype)]


def _input_shape(ctx: EvalContext):
    """The first input's shape, without materializing it if it is itself a known value."""
    known = ctx.inputs[0]
    return known.values.shape if known is not None else ctx.importer.shapes[ctx.importer.value(ctx.node.input[0])]


@evaluator("Shape")
def _shape(ctx: EvalContext):
    shape = _input_shape(ctx)
    start, end = ctx.attrs.get("start", 0), ctx.attrs.get("end", len(shape))
    return [_i64(list(shape)[start:end])]


@evaluator("Size")
def _size(ctx: EvalContext):
    return [_i64(np.array(numel(_input_shape(ctx)), dtype=object))]


@evaluator("Gather")
def _gather(ctx: EvalContext):
    data, idx = ctx.inputs
    axis = ctx.attrs.get("axis", 0)
    size = data.values.shape[axis]
    indices = np.asarray(ctx.ints(1)).reshape(idx.values.shape)
    if ((indices < -size) | (indices >= size)).any():
        raise NotEvaluable("index out of range")  # the Gather kernel reports it at run time
    return [Known(np.take(data.values, indices % size if size else indices, axis=axis), data.dtype)]


def _axes(ctx: EvalContext) -> list[int] | None:
    return ctx.ints(1) if ctx.importer.opset >= 13 else ctx.attrs.get("axes")


@evaluator("Unsqueeze")
def _unsqueeze(ctx: EvalContext):
    v = ctx.inputs[0].values
    rank = v.ndim + len(_axes(ctx))
    for a in sorted(x % rank for x in _axes(ctx)):
        v = np.expand_dims(v, a)
    return [Known(v, ctx.inputs[0].dtype)]


@evaluator("Squeeze")
def _squeeze(ctx: EvalContext):
    v = ctx.inputs[0].values
    axes = _axes(ctx)
    return [Known(np.squeeze(v, axis=None if axes is None else tuple(a % v.ndim for a in axes)),
                  ctx.inputs[0].dtype)]


@evaluator("Concat")
def _concat(ctx: EvalContext):
    parts = [k.values for k in ctx.inputs]
    return [Known(np.concatenate(parts, axis=ctx.attrs["axis"]), ctx.inputs[0].dtype)]


@evaluator("Slice")
def _slice(ctx: EvalContext):
    v = ctx.inputs[0].values
    if ctx.importer.opset < 10:
        starts, ends, axes, steps = ctx.attrs["starts"], ctx.attrs["ends"], ctx.attrs.get("axes"), None
    else:
        starts, ends, axes, steps = ctx.ints(1), ctx.ints(2), ctx.ints(3), ctx.ints(4)
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps or [1] * len(starts)
    index = [slice(None)] * v.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[a % v.ndim] = slice(s, e, st)
    return [Known(v[tuple(index)], ctx.inputs[0].dtype)]


@evaluator("Cast")
def _cast(ctx: EvalContext):
    to = DType.from_onnx(ctx.attrs["to"])
    if to not in (DType.INT64, DType.INT32, DType.BOOL):
        raise NotEvaluable("cast to a non-integer type")
    k = ctx.inputs[0]
    if to is DType.BOOL:
        return [Known(np.frompyfunc(lambda x: _equal(x, 0) is False, 1, 1)(k.values), to)]
    return [Known(k.values, to)]


@evaluator("Identity")
def _identity(ctx: EvalContext):
    return [ctx.inputs[0]]


@evaluator("Reshape")
def _reshape(ctx: EvalContext):
    target = ctx.ints(1) if ctx.importer.opset >= 5 else ctx.attrs["shape"]
    v = ctx.inputs[0].values
    target = [v.shape[i] if t == 0 else t for i, t in enumerate(target)]
    return [Known(v.reshape(target), ctx.inputs[0].dtype)]


@evaluator("Where")
def _where(ctx: EvalContext):
    c, x, y = ctx.inputs
    return [Known(np.where(c.values.astype(bool), x.values, y.values), x.dtype)]


@evaluator("Not")
def _not(ctx: EvalContext):
    return [Known(~ctx.inputs[0].values.astype(bool), DType.BOOL)]


@evaluator("ConstantOfShape")
def _constant_of_shape(ctx: EvalContext):
    shape = ctx.ints(0)
    if prod(max(d, 0) for d in shape) > MAX_ELEMENTS:
        raise NotEvaluable("not a shape vector")
    value = ctx.attrs.get("value")
    arr = onnx.numpy_helper.to_array(value) if value is not None else np.zeros(1, np.float32)
    dtype = DType.from_numpy(arr.dtype)
    if dtype not in (DType.INT64, DType.INT32, DType.BOOL):
        raise NotEvaluable("float fill")
    return [Known(np.full(shape, arr.reshape(-1)[0].item(), dtype=object), dtype)]
