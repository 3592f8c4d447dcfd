"""Slice, Split, Pad, CenterCropPad and Range whose arguments are known only at run time (a graph
input, or computed from tensor values), and Split of a dynamic axis without sizes.

The clamped extents are computed by graph ops on the small argument tensors (`ShapeArithmetic`) and
bound as new dims; each sliced or padded axis is then a Gather at computed indices (`_take`), which
the existing kernels run whatever the offsets and steps. The converters take this path only when an
argument is not known at import: constant and shape-computed arguments keep their static ops.

A value the operator refuses (a Slice step or Range delta of 0, repeated or out-of-range axes, Split
sizes that do not add up) is a shape assumption on dims bound from the values, checked before any
kernel that depends on them runs (ShapeMismatchError).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from xdsl.ir import SSAValue

from pyflame_rt.dialects import graph, graph_math as gm, graph_tensor as gt
from pyflame_rt.dialects.assumptions import require_sum
from pyflame_rt.dialects.symbolic import Dim
from pyflame_rt.dtype import DType
from pyflame_rt.errors import InvalidModelError
from pyflame_rt.importers.onnx.converters import _NodeContext
from pyflame_rt.importers.onnx.run_time_shapes import ShapeArithmetic

INT64_MAX = np.iinfo(np.int64).max
FLOAT_DTYPES = (DType.FLOAT32, DType.FLOAT64, DType.FLOAT16, DType.BFLOAT16)


def _pick(sa: ShapeArithmetic, v: SSAValue, i: int) -> SSAValue:
    """Element i of the 1-D v, as a scalar."""
    return sa.ctx.emit(gt.GatherOp, [v, sa.const(i)])[0]


def _elements(sa: ShapeArithmetic, v: SSAValue, indices: Sequence[int]) -> SSAValue:
    return sa.ctx.emit(gt.GatherOp, [v, sa.const(list(indices))])[0]


def positions(sa: ShapeArithmetic, count: Dim) -> SSAValue:
    """0, 1, ..., count - 1 (int64)."""
    return sa.ctx.emit(gt.RangeOp, [], size=count, dtype=DType.INT64.value)[0]


def _take(sa: ShapeArithmetic, x: SSAValue, axis: int, indices: SSAValue) -> SSAValue:
    return sa.ctx.emit(gt.GatherOp, [x, indices], axis=axis)[0]


def _require(sa: ShapeArithmetic, holds: SSAValue, name: str, what: str) -> None:
    """A condition on the values (a bool scalar): a validity flag alone, checked once it is
    computed, before the kernels after it run."""
    sa.bind(None, name, holds, what)


def _none_zero(sa: ShapeArithmetic, v: SSAValue) -> SSAValue:
    return sa.eq(sa.reduce("sum", sa.eq(v, 0)), 0)


def _not(sa: ShapeArithmetic, b: SSAValue) -> SSAValue:
    return sa.eq(sa.cast(b), 0)


def _ceil_div_counts(sa: ShapeArithmetic, first: SSAValue, end: SSAValue, step: SSAValue) -> SSAValue:
    """max(ceil((end - first) / step), 0) for non-zero steps of either sign (0 for a zero step)."""
    sign = sa.where(sa.lt(0, step), 1, -1)
    magnitude = sa.mul(step, sign)
    span = sa.mul(sa.sub(end, first), sign)
    return sa.max(sa.div(sa.add(span, sa.sub(magnitude, 1)), magnitude), 0)


def _axis_values(sa: ShapeArithmetic, axes: SSAValue, rank: int, values: SSAValue, default: int) -> SSAValue:
    """Per axis of a rank-`rank` tensor, the value given for it in `values` (parallel to the run-time
    `axes`, negatives counting from the end), or `default` where none is."""
    normal = sa.where(sa.lt(axes, 0), sa.add(axes, rank), axes)
    named = sa.lt(0, sa.axis_counts(axes, rank))
    return sa.where(named, sa.lookup(normal, values, list(range(rank))), default)


def _run_time_axes(sa: ShapeArithmetic, i: int, rank: int, n: int) -> SSAValue:
    """The node's run-time axes input i (n of them), required in range and distinct."""
    axes = sa.operand(i)
    if sa.size(axes) != n:
        raise InvalidModelError(f"{sa.ctx.node.op_type} node '{sa.ctx.node.name or sa.ctx.node.output[0]}': "
                                f"{sa.size(axes)} axes for {n} values")
    _require(sa, sa.axes_valid(sa.axis_counts(axes, rank), n), "axes_ok",
             f"the axes must be distinct and in [-{rank}, {rank})")
    return axes


def static_axes(ctx: _NodeContext, axes: Sequence[int], rank: int) -> list[int]:
    if any(not -rank <= a < rank for a in axes) or len({a % rank for a in axes}) != len(axes):
        raise InvalidModelError(f"{ctx.node.op_type} node '{ctx.node.name or ctx.node.output[0]}': axes {list(axes)} "
                                f"must be distinct and in [-{rank}, {rank})")
    return [a % rank for a in axes]


# ---------------------------------------------------------------- Slice
def slice_at_run_time(ctx: _NodeContext, axes: list[int] | None) -> list[SSAValue]:
    """Slice whose starts / ends / steps (or axes: `axes` None with an axes input) are known only at
    run time. With run-time axes every axis is taken (an axis not named keeps all its elements)."""
    sa = ShapeArithmetic(ctx)
    x = ctx.input(0)
    shape = ctx.shape(x)
    rank = len(shape)
    starts, ends = sa.operand(1), sa.operand(2)
    n = sa.size(starts)
    steps = sa.operand(4) if ctx.input(4) is not None else sa.const([1] * n)
    if sa.size(ends) != n or sa.size(steps) != n:
        raise InvalidModelError(f"Slice node '{ctx.node.name or ctx.node.output[0]}': starts, ends and steps "
                                f"have {n}, {sa.size(ends)} and {sa.size(steps)} elements")
    if axes is None and ctx.input(3) is not None:
        run_axes = _run_time_axes(sa, 3, rank, n)
        starts, ends, steps = (_axis_values(sa, run_axes, rank, v, d)
                               for v, d in ((starts, 0), (ends, INT64_MAX), (steps, 1)))
        axes = list(range(rank))
    else:
        axes = static_axes(ctx, axes if axes is not None else range(n), rank)
    _require(sa, _none_zero(sa, steps), "steps_ok", "Slice steps must not be 0")
    sizes = sa.dims([shape[a] for a in axes])
    forward = sa.lt(0, steps)
    low, high = sa.where(forward, 0, -1), sa.where(forward, sizes, sa.sub(sizes, 1))

    def clamped(v):
        return sa.min(sa.max(sa.where(sa.lt(v, 0), sa.add(v, sizes), v), low), high)

    first = clamped(starts)
    counts = sa.bind(_ceil_div_counts(sa, first, clamped(ends), steps), "count")
    for i, (axis, count) in enumerate(zip(axes, counts)):
        indices = sa.add(sa.mul(positions(sa, count), _pick(sa, steps, i)), _pick(sa, first, i))
        x = _take(sa, x, axis, indices)
    return [x]


# ---------------------------------------------------------------- Split
def split_at_run_time(ctx: _NodeContext, axis: int) -> list[SSAValue]:
    """Split whose sizes are known only at run time: each is an output's dim along `axis` (bound from
    the value), the outputs Gathers from the running offsets; the sizes must add up to the axis."""
    x = ctx.input(0)
    extent = ctx.shape(x)[axis]
    known = ctx.dims_input(1)
    if known is None:
        raise ctx.fail("the split sizes must be an int64 or int32 tensor of static shape")
    sizes = list(known.values.flat)
    if len(sizes) != len(ctx.node.output):
        raise ctx.fail(f"{len(sizes)} split sizes for {len(ctx.node.output)} outputs")
    require_sum(sizes, extent, f"Split sizes must add up to axis {axis}")
    sa = ShapeArithmetic(ctx)
    return _split_by(sa, x, axis, sizes, sa.operand(1))


def split_evenly_at_run_time(ctx: _NodeContext, axis: int, parts: int) -> list[SSAValue]:
    """Split of a dynamic axis into `parts` of ceil(extent / parts) elements (the last ones smaller,
    or empty): sizes computed from the extent and bound at run time."""
    if len(ctx.node.output) != parts:
        raise ctx.fail(f"{parts} parts for {len(ctx.node.output)} outputs")
    sa = ShapeArithmetic(ctx)
    x = ctx.input(0)
    extent = sa.dims([ctx.shape(x)[axis]])
    chunk = sa.div(sa.add(extent, parts - 1), parts)
    values = sa.min(chunk, sa.max(sa.sub(extent, sa.mul(chunk, list(range(parts)))), 0))
    return _split_by(sa, x, axis, sa.bind(values, "split"), values)


def _split_by(sa: ShapeArithmetic, x: SSAValue, axis: int, sizes: list[Dim], values: SSAValue) -> list[SSAValue]:
    """x's consecutive pieces along `axis` of the given sizes (`values`: the same as a 1-D tensor)."""
    offsets = sa.sub(sa.cumsum(values), values)
    return [_take(sa, x, axis, sa.add(positions(sa, size), _pick(sa, offsets, i))) for i, size in enumerate(sizes)]


# ------------------------------------------------------------------ Pad
def pad_at_run_time(ctx: _NodeContext, mode: str) -> list[SSAValue]:
    """Pad whose pads, axes or constant value are known only at run time. Negative pads crop."""
    sa = ShapeArithmetic(ctx)
    x = ctx.input(0)
    rank = len(ctx.shape(x))
    pads = sa.operand(1)
    n = sa.size(pads) // 2
    if ctx.input(3) is None:
        axes: list[int] | None = static_axes(ctx, range(rank), rank)
    else:
        known = ctx.const_input(3)
        axes = None if known is None else static_axes(ctx, [int(a) for a in known.ravel()], rank)
    if sa.size(pads) != 2 * (n if axes is None else len(axes)):
        raise InvalidModelError(f"Pad node '{ctx.node.name or ctx.node.output[0]}': {sa.size(pads)} pads for "
                                f"{n if axes is None else len(axes)} axes")
    before, after = _elements(sa, pads, range(n)), _elements(sa, pads, range(n, 2 * n))
    if axes is None:
        run_axes = _run_time_axes(sa, 3, rank, n)
        before, after = (_axis_values(sa, run_axes, rank, v, 0) for v in (before, after))
        axes = list(range(rank))
    return [pad_axes(sa, x, axes, before, after, mode, _pad_value(ctx, x))]


def _pad_value(ctx: _NodeContext, x: SSAValue) -> SSAValue:
    """Pad's constant value as a scalar of x's type (0 when absent or empty)."""
    v = ctx.input(2)
    if v is None or ctx.shape(v) in ((0,),):
        return ctx.importer.add_constant(f"{ctx.node.output[0]}_value", np.zeros((), graph.dtype_of(x.type).numpy))
    return ctx.emit(graph.ReshapeOp, [v], shape=[])[0]


def pad_axes(sa: ShapeArithmetic, x: SSAValue, axes: list[int], before: SSAValue, after: SSAValue, mode: str,
             value: SSAValue) -> SSAValue:
    """x padded along each of `axes` by the run-time `before` / `after` (1-D, parallel to axes;
    negative ones crop), in `mode` (constant with the scalar `value`, edge, reflect, wrap)."""
    shape = sa.ctx.shape(x)
    rank = len(shape)
    sizes = sa.dims([shape[a] for a in axes])
    out = sa.bind(sa.add(sa.add(sizes, before), after), "size")
    for i, (axis, count) in enumerate(zip(axes, out)):
        size = _pick(sa, sizes, i)
        source = sa.sub(positions(sa, count), _pick(sa, before, i))
        if mode == "reflect":
            period = sa.max(sa.mul(sa.sub(size, 1), 2), 1)
            folded = sa.ctx.emit(gm.ModOp, [source, period])[0]
            indices = sa.where(sa.lt(folded, size), folded, sa.sub(period, folded))
        elif mode == "wrap":
            indices = sa.ctx.emit(gm.ModOp, [source, sa.max(size, 1)])[0]
        else:  # constant, edge: the nearest element (constant then masks the positions outside)
            indices = sa.min(sa.max(source, 0), sa.sub(size, 1))
        x = _take(sa, x, axis, indices)
        if mode == "constant":
            inside = sa.both(sa.lt(-1, source), sa.lt(source, size))
            inside = sa.reshape(inside, [-1, *[1] * (rank - 1 - axis)])
            (x,) = sa.ctx.emit(gm.WhereOp, [inside, x, value])
    return x


# --------------------------------------------------------- CenterCropPad
def center_crop_pad_at_run_time(ctx: _NodeContext, axes: list[int]) -> list[SSAValue]:
    """CenterCropPad to a target shape known only at run time: per axis the (negative when cropping)
    pads that center the input, (target - dim) // 2 before when padding, (dim - target) // 2 cropped
    before when cropping."""
    sa = ShapeArithmetic(ctx)
    x = ctx.input(0)
    target = sa.operand(1)
    if sa.size(target) != len(axes):
        raise InvalidModelError(f"CenterCropPad node '{ctx.node.name or ctx.node.output[0]}': "
                                f"{sa.size(target)} target dims for {len(axes)} axes")
    sizes = sa.dims([ctx.shape(x)[a] for a in axes])
    grow = sa.sub(target, sizes)
    before = sa.where(sa.lt(0, grow), sa.div(grow, 2), sa.sub(0, sa.div(sa.sub(sizes, target), 2)))
    zero = ctx.importer.add_constant(f"{ctx.node.output[0]}_value", np.zeros((), graph.dtype_of(x.type).numpy))
    return [pad_axes(sa, x, axes, before, sa.sub(grow, before), "constant", zero)]


# ---------------------------------------------------------------- Range
def range_at_run_time(ctx: _NodeContext, dtype: DType) -> list[SSAValue]:
    """Range whose start, limit or delta is known only at run time: max(ceil((limit - start) /
    delta), 0) elements (a dim bound from the computed count), start + i * delta. Integers are
    computed in int64, floats in their own type (float16 / bfloat16 in float32)."""
    sa = ShapeArithmetic(ctx)
    start, limit, delta = (ctx.input(i) for i in range(3))
    if dtype in FLOAT_DTYPES:
        work = DType.FLOAT32 if dtype in (DType.FLOAT16, DType.BFLOAT16) else dtype
        start, limit, delta = (v if graph.dtype_of(v.type) is work else
                               ctx.emit(gm.CastOp, [v], to=work.value)[0] for v in (start, limit, delta))
        (quotient,) = ctx.emit(graph.DivOp, [ctx.emit(graph.SubOp, [limit, start])[0], delta])
        (quotient,) = ctx.emit(gm.CeilOp, [quotient])
        valid = sa.both(_not(sa, ctx.emit(gm.IsNaNOp, [quotient])[0]), _not(sa, ctx.emit(gm.IsInfOp, [quotient])[0]))
        zero = ctx.importer.add_constant(f"{ctx.node.output[0]}_zero", np.zeros((), work.numpy))
        count = sa.max(sa.cast(ctx.emit(gm.WhereOp, [valid, quotient, zero])[0]), 0)
    else:
        start, limit, delta = (sa.cast(v) for v in (start, limit, delta))
        valid = _not(sa, sa.eq(delta, 0))
        count = sa.where(valid, _ceil_div_counts(sa, start, limit, delta), 0)
    _require(sa, valid, "delta_ok", "Range delta must not be 0, and the count must be finite")
    (size,) = sa.bind(sa.reshape(count, [1]), "count")
    (values,) = ctx.emit(gm.CastOp, [positions(sa, size)], to=graph.dtype_of(delta.type).value)
    (values,) = ctx.emit(graph.AddOp, [ctx.emit(graph.MulOp, [values, delta])[0], start])
    return ctx.emit(gm.CastOp, [values], to=dtype.value) if graph.dtype_of(values.type) is not dtype else [values]
