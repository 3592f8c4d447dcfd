"""Resize with antialias (linear and cubic modes), as graph ops.

When an axis is downsampled (scale s < 1) the ONNX filter is widened by 1 / s: an output at source
coordinate x takes the n = 2 - 2 * start taps j = floor(x) + start + k (start = floor(-r / s) + 1,
r the filter's radius: 1 linear, 2 cubic; x an integer counts as the previous pixel's offset 1),
weighted by the filter at (j - x) * s and normalized to sum 1. Taps outside the input take the edge
pixel, or weigh 0 with exclude_outside (the others renormalized). s >= 1 is the plain filter.

The tap count follows from the scale, so the tables are computed by graph ops in float64 (n bound
as a dim at run time: a scale that is not positive and finite is a ShapeMismatchError), and each
resized axis is a Gather of its taps and a weighted sum over them (the resize kernel's tables have a
fixed tap count).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from xdsl.ir import SSAValue

from pyflame_rt.dialects import graph, graph_math as gm, graph_reduce as gr, graph_tensor as gt
from pyflame_rt.dialects.symbolic import Dim
from pyflame_rt.importers.onnx.converters import _NodeContext
from pyflame_rt.importers.onnx.ops.run_time_signal import as_float64, float64_const, float_op
from pyflame_rt.importers.onnx.ops.run_time_slices import positions
from pyflame_rt.importers.onnx.run_time_shapes import ShapeArithmetic

_RADIUS = {"linear": 1.0, "cubic": 2.0}


def _source(sa: ShapeArithmetic, mode: str, out: Dim, size: SSAValue, scale: SSAValue) -> SSAValue:
    """The source coordinate of each output index (float64 [out]) by `coordinate_transformation_mode`,
    as onnx's reference computes it (the output length scale * size may be fractional)."""
    o = as_float64(sa, positions(sa, out))
    width = float_op(sa, graph.MulOp, scale, size)
    half_pixel = float_op(sa, graph.SubOp, float_op(sa, graph.DivOp, float_op(sa, graph.AddOp, o, 0.5), scale), 0.5)
    single = float_op(sa, gm.EqualOp, width, 1.0)
    if mode == "half_pixel":
        return half_pixel
    if mode == "asymmetric":
        return float_op(sa, graph.DivOp, o, scale)
    if mode == "pytorch_half_pixel":
        return sa.ctx.emit(gm.WhereOp, [single, float64_const(sa, -0.5), half_pixel])[0]
    if mode == "align_corners":
        step = float_op(sa, graph.DivOp, float_op(sa, graph.SubOp, size, 1.0), float_op(sa, graph.SubOp, width, 1.0))
        return sa.ctx.emit(gm.WhereOp, [single, float64_const(sa, 0.0), float_op(sa, graph.MulOp, o, step)])[0]
    if mode == "half_pixel_symmetric":
        kept = float_op(sa, graph.DivOp, as_float64(sa, sa.dims([out])), width)
        offset = float_op(sa, graph.MulOp, float_op(sa, graph.DivOp, size, 2.0), float_op(sa, graph.SubOp, 1.0, kept))
        return float_op(sa, graph.AddOp, half_pixel, offset)
    raise sa.ctx.fail(f"antialias with coordinate_transformation_mode {mode} is not supported")


def _filter(sa: ShapeArithmetic, mode: str, d: SSAValue, a: float) -> SSAValue:
    """The filter's weight at the (scaled) distances d: the triangle, or Keys' cubic with coefficient a."""
    d = sa.ctx.emit(gm.AbsOp, [d])[0]
    if mode == "linear":
        return float_op(sa, gm.MaxOp, float_op(sa, graph.SubOp, 1.0, d), 0.0)
    d2 = float_op(sa, graph.MulOp, d, d)
    d3 = float_op(sa, graph.MulOp, d2, d)

    def poly(c3, c2, c1, c0):
        terms = [float_op(sa, graph.MulOp, d3, c3), float_op(sa, graph.MulOp, d2, c2), float_op(sa, graph.MulOp, d, c1)]
        return float_op(sa, graph.AddOp, float_op(sa, graph.AddOp, float_op(sa, graph.AddOp, terms[0], terms[1]),
                                                  terms[2]), c0)

    inner, outer = poly(a + 2, -(a + 3), 0.0, 1.0), poly(a, -5 * a, 8 * a, -4 * a)
    near, far = float_op(sa, gm.LessOrEqualOp, d, 1.0), float_op(sa, gm.LessOp, d, 2.0)
    return sa.ctx.emit(gm.WhereOp, [near, inner, sa.ctx.emit(gm.WhereOp, [far, outer, float64_const(sa, 0.0)])[0]])[0]


def check_scale(ctx: _NodeContext, scale: float) -> None:
    """A constant scale whose tap count is an exact float64 integer (run-time scales: `_taps`)."""
    if not 2.0 ** -52 <= scale < np.inf:
        raise ctx.fail(f"an antialiased axis needs a scale in [2^-52, inf), got {scale}")


def _taps(sa: ShapeArithmetic, axis: int, mode: str, scale: SSAValue,
          known: float | None) -> tuple[Dim, SSAValue, SSAValue]:
    """The tap count n of `axis` (static when the scale is `known`, else a dim bound at run time),
    the first tap's offset `start` (int64 [1]) and the filter's scale min(scale, 1) (float64 [1])."""
    shrink = float_op(sa, gm.MinOp, scale, 1.0)
    if known is not None:
        check_scale(sa.ctx, known)
        start = int(np.floor(-_RADIUS[mode] / min(known, 1.0))) + 1
        return 2 - 2 * start, sa.const([start]), shrink
    reach = float_op(sa, graph.DivOp, -_RADIUS[mode], shrink)
    start = sa.cast(float_op(sa, graph.AddOp, sa.ctx.emit(gm.FloorOp, [reach])[0], 1.0))
    # a positive scale whose tap count is an exact float64 integer (NaN and 0 are not; the int64 cast exact)
    valid = sa.both(float_op(sa, gm.LessOp, 0.0, scale), float_op(sa, gm.LessOp, -(2.0 ** 52), reach))
    (n,) = sa.bind(sa.sub(2, sa.mul(start, 2)), f"taps{axis}", valid,
                   "the scale must be positive, with a tap count an exact integer")
    return n, start, shrink


def _resize_axis(sa: ShapeArithmetic, x: SSAValue, axis: int, out: Dim, scale: SSAValue, known: float | None,
                 props: dict) -> SSAValue:
    """x resized along `axis` to `out` by the antialiased filter of `scale` (float64 [1]; `known`
    when it is a constant)."""
    ctx, mode = sa.ctx, props["mode"]
    shape = ctx.shape(x)
    size = sa.dims([shape[axis]])
    coords = _source(sa, props["coordinate_transformation_mode"], out, as_float64(sa, size), scale)
    base = ctx.emit(gm.FloorOp, [coords])[0]
    on_pixel = float_op(sa, gm.EqualOp, coords, base)
    base = sa.ctx.emit(gm.WhereOp, [on_pixel, float_op(sa, graph.SubOp, base, 1.0), base])[0]
    ratio = float_op(sa, graph.SubOp, coords, base)  # in (0, 1]
    n, start, shrink = _taps(sa, axis, mode, scale, known)
    offsets = sa.reshape(sa.add(positions(sa, n), start), [1, n])
    taps = sa.add(sa.reshape(sa.cast(base), [out, 1]), offsets)
    distance = float_op(sa, graph.MulOp, float_op(sa, graph.SubOp, as_float64(sa, offsets),
                                                  sa.reshape(ratio, [out, 1])), shrink)
    weights = _filter(sa, mode, distance, props["cubic_coeff_a"])
    inside = sa.both(sa.lt(-1, taps), sa.lt(taps, size))
    if props["exclude_outside"]:
        weights = ctx.emit(gm.WhereOp, [inside, weights, float64_const(sa, 0.0)])[0]
    total = ctx.emit(gr.ReduceOp, [weights], kind="sum", axes=[1], keepdims=True)[0]
    total = ctx.emit(gm.WhereOp, [float_op(sa, gm.EqualOp, total, 0.0), float64_const(sa, 1.0), total])[0]
    weights = float_op(sa, graph.DivOp, weights, total)
    (weights,) = ctx.emit(gm.CastOp, [weights], to=graph.dtype_of(x.type).value)
    trailing = len(shape) - axis - 1
    (weights,) = ctx.emit(graph.ReshapeOp, [weights], shape=[out, n] + [1] * trailing)
    (picked,) = ctx.emit(gt.GatherOp, [x, sa.min(sa.max(taps, 0), sa.sub(size, 1))], axis=axis)
    (picked,) = ctx.emit(graph.MulOp, [picked, weights])
    return ctx.emit(gr.ReduceOp, [picked], kind="sum", axes=[axis + 1], keepdims=False)[0]


def antialiased_resize(ctx: _NodeContext, x: SSAValue, resized: Sequence[tuple[int, Dim, SSAValue | float]],
                       props: dict) -> list[SSAValue]:
    """x resized by the antialiased filter of `props["mode"]` along each (axis, output dim, scale:
    a constant, or a float32 [1] tensor) of `resized`, one axis after the other (the filter is
    separable)."""
    sa = ShapeArithmetic(ctx)
    for axis, out, scale in resized:
        known = None if isinstance(scale, SSAValue) else float(scale)
        tensor = float64_const(sa, known) if known is not None else as_float64(sa, scale)
        x = _resize_axis(sa, x, axis, out, tensor, known, props)
    return [x]
