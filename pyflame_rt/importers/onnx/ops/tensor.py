"""Converters for Gather, ConstantOfShape, NonZero, Compress, Unique, Expand, Range, Trilu, OneHot,
Einsum, and the symbolic side of Reshape targets. Shape-valued inputs (shape, limit, k, depth) come
from the import-time shape evaluation (`sym_input`) and may hold symbolic dims; those known only at
run time are dims bound from their values, or (Range) computed by run_time_slices."""
from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from pyflame_rt.dialects import graph, graph_math as gm, graph_nn as nn, graph_tensor as gt
from pyflame_rt.dialects.assumptions import require_at_most
from pyflame_rt.dialects.symbolic import SymDim
from pyflame_rt.dtype import DType
from pyflame_rt.errors import InvalidModelError
from pyflame_rt.importers.onnx.converters import _NodeContext, converter
from pyflame_rt.importers.onnx.ops.run_time_slices import positions, range_at_run_time
from pyflame_rt.importers.onnx.run_time_shapes import ShapeArithmetic


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


def _scalar(ctx: _NodeContext, i: int):
    """A scalar input known at import (int, float or symbolic dim), or None."""
    known = ctx.sym_input(i)
    if known is not None:
        return known.values.reshape(-1)[0]
    value = ctx.const_input(i)
    return None if value is None else value.reshape(-1)[0].item()


@converter("Range", newer_attributes=("stash_type",))
def _range(ctx: _NodeContext):
    """A static or symbolic size where start, limit and delta are known (a symbolic limit with start 0
    and delta 1); otherwise the size is computed at run time (run_time_slices.range_at_run_time)."""
    start, limit, delta = (_scalar(ctx, i) for i in range(3))
    known = ctx.sym_input(0)  # its element type, without materializing a shape computation
    dtype = known.dtype if known is not None else graph.dtype_of(ctx.input(0).type)
    # the range kernel computes float16 / bfloat16 elements in float32: opset 27's default stash_type
    if dtype in (DType.FLOAT16, DType.BFLOAT16) and ctx.attrs.get("stash_type", 1) != 1:
        raise ctx.fail("only stash_type 1 (float) is supported for float16 / bfloat16")
    if start is None or limit is None or delta is None or isinstance(start, SymDim) or isinstance(delta, SymDim) \
            or isinstance(limit, SymDim) and (delta != 1 or start != 0):
        return range_at_run_time(ctx, dtype)
    if delta == 0 or not all(np.isfinite(v) for v in (start, delta)):
        raise InvalidModelError(f"Range node '{ctx.node.name or ctx.node.output[0]}': start {start} and "
                                f"delta {delta} must be finite, delta non-zero")
    if isinstance(limit, SymDim):
        size = limit
    elif not np.isfinite(limit):
        raise InvalidModelError(f"Range node '{ctx.node.name or ctx.node.output[0]}': limit {limit} is not finite")
    else:
        size = max(int(np.ceil((limit - start) / delta)), 0)
    return ctx.emit(gt.RangeOp, [], start=start, delta=delta, size=size, dtype=dtype.value)


@converter("Trilu")
def _trilu(ctx: _NodeContext):
    k, upper = ctx.const_input(1), bool(ctx.attrs.get("upper", 1))
    if ctx.input(1) is not None and k is None:
        return _trilu_run_time_k(ctx, upper)
    return ctx.emit(gt.TriluOp, [ctx.input(0)], k=int(k.reshape(-1)[0]) if k is not None else 0, upper=upper)


def _trilu_run_time_k(ctx: _NodeContext, upper: bool):
    """A k known only at run time (it moves the diagonal, not a size): the kept elements are those
    whose column - row is >= k (upper) or <= k (lower), a mask built from ranges over the last two dims."""
    sa = ShapeArithmetic(ctx)
    x = ctx.input(0)
    *_, rows, cols = ctx.shape(x)
    diagonal = sa.sub(positions(sa, cols), sa.reshape(positions(sa, rows), [-1, 1]))
    k = sa.reshape(sa.cast(ctx.input(1)), [])
    (keep,) = ctx.emit(gm.GreaterOrEqualOp if upper else gm.LessOrEqualOp, [diagonal, k])
    zero = ctx.importer.add_constant(f"{ctx.node.output[0]}_zero", np.zeros((), graph.dtype_of(x.type).numpy))
    return ctx.emit(gm.WhereOp, [keep, x, zero])


@converter("OneHot")
def _one_hot(ctx: _NodeContext):
    """Where(indices == range(depth) along `axis`, on, off): an index outside [-depth, depth) matches
    no position (all off). A depth known only at run time is a dim bound from its value, checked
    positive before any kernel reads it."""
    sa = ShapeArithmetic(ctx)
    indices, values = sa.cast(ctx.input(0)), ctx.input(2)
    rank = len(ctx.shape(indices)) + 1
    axis = int(ctx.attrs.get("axis", -1))
    if not -rank <= axis < rank:
        raise InvalidModelError(f"OneHot node '{ctx.node.name or ctx.node.output[0]}': axis {axis} is out of "
                                f"range for rank {rank}")
    axis %= rank
    depth = _one_hot_depth(ctx)
    require_at_most(1, depth, "OneHot depth must be positive")
    indices = sa.where(sa.lt(indices, 0), sa.add(indices, sa.reshape(sa.dims([depth]), [])), indices)
    (indices,) = ctx.emit(nn.UnsqueezeOp, [indices], axes=[axis])
    hot = sa.eq(indices, sa.reshape(positions(sa, depth), [-1, *[1] * (rank - 1 - axis)]))
    off, on = (ctx.emit(gt.GatherOp, [values, sa.const(i)])[0] for i in (0, 1))
    return ctx.emit(gm.WhereOp, [hot, on, off])


def _one_hot_depth(ctx: _NodeContext):
    """OneHot's depth (a scalar or one element of any number type, truncated): an int, or a dim bound
    from its value at run time."""
    known = ctx.const_input(1)
    if known is not None:
        if known.size != 1:
            raise InvalidModelError(f"OneHot node '{ctx.node.name or ctx.node.output[0]}': depth has "
                                    f"{known.size} elements")
        return int(known.reshape(-1)[0])
    known = ctx.dims_input(1)  # an integer graph input, or computed
    if known is None:  # a floating-point depth: bound from its cast
        sa = ShapeArithmetic(ctx)
        return sa.bind(sa.reshape(sa.cast(ctx.input(1)), [1]), "depth")[0]
    if known.values.size != 1:
        raise InvalidModelError(f"OneHot node '{ctx.node.name or ctx.node.output[0]}': depth has "
                                f"{known.values.size} elements")
    return known.values.reshape(-1)[0]


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
