"""Converters for Gather, ConstantOfShape, NonZero, Compress, Unique, Expand, Range, Trilu, Einsum,
and the symbolic side of Reshape targets. Shape-valued inputs (shape, limit, k) come from the import-time
shape evaluation (`sym_input`): they may hold symbolic dims but must be known."""
from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from pyflame_rt.dialects import graph, graph_tensor as gt
from pyflame_rt.dialects.symbolic import SymDim
from pyflame_rt.dtype import DType
from pyflame_rt.errors import InvalidModelError
from pyflame_rt.importers.onnx.converters import _NodeContext, converter


@converter("Gather")
def _gather(ctx: _NodeContext):
    return ctx.emit(gt.GatherOp, [ctx.input(0), ctx.input(1)], axis=int(ctx.attrs.get("axis", 0)))


@converter("ConstantOfShape")
def _constant_of_shape(ctx: _NodeContext):
    shape = ctx.known_dims(0, "shape", run_time=True)
    value = ctx.attrs.get("value")
    arr = numpy_helper.to_array(value) if value is not None else np.zeros(1, np.float32)
    return ctx.emit(gt.ConstantOfShapeOp, [], shape=shape, value=float(arr.reshape(-1)[0]),
                    dtype=DType.from_numpy(arr.dtype).value)


@converter("NonZero")
def _nonzero(ctx: _NodeContext):
    """The count of non-zero elements is a dim bound while the model runs, named after the output."""
    count = ctx.importer.new_dim(f"{ctx.node.output[0]}_count")
    return ctx.emit(gt.NonZeroOp, [ctx.input(0)], count=count)


@converter("Compress")
def _compress(ctx: _NodeContext):
    """Gather of the condition's non-zero positions (NonZero: a dim bound while the model runs) along
    `axis`, or of the flattened input without one. Positions past the input's extent are refused by
    Gather's run-time index check."""
    x, condition = ctx.input(0), ctx.input(1)
    if len(ctx.shape(condition)) != 1:
        raise InvalidModelError(f"Compress node '{ctx.node.name or ctx.node.output[0]}': the condition must be 1-D")
    count = ctx.importer.new_dim(f"{ctx.node.output[0]}_count")
    (positions,) = ctx.emit(gt.NonZeroOp, [condition], count=count)
    (positions,) = ctx.emit(graph.ReshapeOp, [positions], shape=[-1])
    if "axis" not in ctx.attrs:
        (x,) = ctx.emit(graph.ReshapeOp, [x], shape=[-1])
    return ctx.emit(gt.GatherOp, [x, positions], axis=int(ctx.attrs.get("axis", 0)))


@converter("Unique")
def _unique(ctx: _NodeContext):
    """The distinct count is a dim bound while the model runs, named after the first output."""
    axis = ctx.attrs.get("axis")
    count = ctx.importer.new_dim(f"{ctx.node.output[0]}_count")
    return ctx.emit(gt.UniqueOp, [ctx.input(0)], axis=None if axis is None else int(axis),
                    sorted=bool(ctx.attrs.get("sorted", 1)), count=count)


@converter("Expand")
def _expand(ctx: _NodeContext):
    return ctx.emit(gt.ExpandOp, [ctx.input(0)], shape=ctx.known_dims(1, "shape", run_time=True))


def _scalar(ctx: _NodeContext, i: int, what: str):
    """A scalar input known at import (int, float or symbolic dim) and its element type."""
    known = ctx.sym_input(i)
    if known is not None:
        return known.values.reshape(-1)[0], known.dtype
    value = ctx.const_input(i)
    if value is None:
        raise ctx.fail(f"the {what} must be known at compile time (constant or computed from input shapes)")
    return value.reshape(-1)[0].item(), DType.from_numpy(value.dtype)


@converter("Range", newer_attributes=("stash_type",))
def _range(ctx: _NodeContext):
    (start, dtype), (limit, _), (delta, _) = (_scalar(ctx, i, n) for i, n in enumerate(("start", "limit", "delta")))
    # the range kernel computes float16 / bfloat16 elements in float32: opset 27's default stash_type
    if dtype in (DType.FLOAT16, DType.BFLOAT16) and ctx.attrs.get("stash_type", 1) != 1:
        raise ctx.fail("only stash_type 1 (float) is supported for float16 / bfloat16")
    if isinstance(start, SymDim) or isinstance(delta, SymDim):
        raise ctx.fail("a symbolic start or delta is not supported")
    if delta == 0 or not all(np.isfinite(v) for v in (start, delta)):
        raise InvalidModelError(f"Range node '{ctx.node.name or ctx.node.output[0]}': start {start} and "
                                f"delta {delta} must be finite, delta non-zero")
    if isinstance(limit, SymDim):
        if delta != 1 or start != 0:
            raise ctx.fail("a symbolic limit needs start 0 and delta 1")
        size = limit
    elif not np.isfinite(limit):
        raise InvalidModelError(f"Range node '{ctx.node.name or ctx.node.output[0]}': limit {limit} is not finite")
    else:
        size = max(int(np.ceil((limit - start) / delta)), 0)
    return ctx.emit(gt.RangeOp, [], start=start, delta=delta, size=size, dtype=dtype.value)


@converter("Trilu")
def _trilu(ctx: _NodeContext):
    k = ctx.const_input(1)
    if ctx.input(1) is not None and k is None:
        raise ctx.fail("k must be a constant")
    return ctx.emit(gt.TriluOp, [ctx.input(0)], k=int(k.reshape(-1)[0]) if k is not None else 0,
                    upper=bool(ctx.attrs.get("upper", 1)))


@converter("Einsum")
def _einsum(ctx: _NodeContext):
    eq = ctx.attrs["equation"]
    eq = eq.decode() if isinstance(eq, bytes) else eq
    inputs = [ctx.input(i) for i in range(len(ctx.node.input))]
    if len(inputs) > 2:
        raise ctx.fail("einsum over more than two operands is not supported")
    return ctx.emit(gt.EinsumOp, inputs, equation=eq)


@converter("BitCast")
def _bitcast(ctx: _NodeContext):
    return ctx.emit(gt.BitCastOp, [ctx.input(0)], to=DType.from_onnx(int(ctx.attrs["to"])).value)
