"""DFT and STFT whose axis, dft_length, frame_step or frame_length is known only at run time (a graph
input, or computed from tensor values) or whose signal length is dynamic, and MelWeightMatrix whose
arguments are known only at run time.

What the constant path precomputes is computed by graph ops from the run-time values instead
(`ShapeArithmetic`): the dims around the signal axis and the transform's bins are bound as new dims,
and the cos / sin matrix is built from the bound sizes (its phases reduced modulo the transform
length in int64, so exact, then evaluated in float64), so one GEMM still does the transform. The
signal axis is reached by viewing the input as [before, n, after, c] (products of the dims around
the run-time axis) and swapping n and after.

Values the operator refuses (an axis out of range or naming the complex dim, a transform length
below 1, a frame_step below 1, a frame longer than the signal, mel triangles beyond the Nyquist
bin) make the bound `..._valid` dim -1: a ShapeMismatchError before any kernel that depends on
them runs.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import numpy as np
from xdsl.ir import SSAValue

from pyflame_rt.dialects import graph, graph_math as gm, graph_nn as nn, graph_tensor as gt
from pyflame_rt.dialects.symbolic import Dim, dim_mul
from pyflame_rt.dtype import DType
from pyflame_rt.importers.onnx.converters import _NodeContext
from pyflame_rt.importers.onnx.ops.run_time_slices import positions
from pyflame_rt.importers.onnx.run_time_shapes import ShapeArithmetic


def as_float64(sa: ShapeArithmetic, v: SSAValue) -> SSAValue:
    """v cast to float64 (the precision the run-time tables are computed in)."""
    return sa.ctx.emit(gm.CastOp, [v], to=DType.FLOAT64.value)[0]


def float64_const(sa: ShapeArithmetic, value: float) -> SSAValue:
    return sa.ctx.importer.add_constant(f"{sa.ctx.node.output[0]}_f", np.array([value], np.float64))


def float_op(sa: ShapeArithmetic, op_cls, a: SSAValue | float, b: SSAValue | float) -> SSAValue:
    """A binary op on float64 tensors; a Python float is made a float64 constant."""
    return sa.ctx.emit(op_cls, [v if isinstance(v, SSAValue) else float64_const(sa, v) for v in (a, b)])[0]


def _scalar(sa: ShapeArithmetic, i: int, default: int | SSAValue) -> SSAValue:
    """The node's input i as int64 [1], or `default` when it is absent."""
    if sa.ctx.input(i) is None:
        return sa.const([default]) if isinstance(default, int) else default
    v = sa.operand(i)
    if sa.size(v) != 1:
        raise sa.ctx.fail(f"input {i} must hold one value, got shape {list(sa.ctx.shape(sa.ctx.input(i)))}")
    return v


def _stack(sa: ShapeArithmetic, values: list[SSAValue], axis: int) -> SSAValue:
    return sa.concat([sa.ctx.emit(nn.UnsqueezeOp, [v], axes=[axis])[0] for v in values], axis)


def _bins(sa: ShapeArithmetic, length: SSAValue, onesided: bool, inverse: bool) -> SSAValue:
    """The transform's output positions: the samples of an inverse one-sided spectrum, the
    length // 2 + 1 bins of a one-sided one, all `length` bins otherwise."""
    return sa.add(sa.div(length, 2), 1) if onesided and not inverse else length


def _matrix(sa: ShapeArithmetic, n: Dim, c: int, length: SSAValue, bins: Dim, parts: int, onesided: bool,
            inverse: bool, dtype: DType) -> SSAValue:
    """[n * c, bins * parts]: the run-time form of signal.py's `_dft_matrix` / `_inverse_onesided_matrix`.
    Row r (an input position; its real then imaginary part) to column q: e^(+-2 pi i (r q mod length)
    / length), rows beyond the signal's length (or the one-sided half) zero."""
    ctx = sa.ctx
    rows, cols = sa.reshape(positions(sa, n), [n, 1]), sa.reshape(positions(sa, bins), [1, bins])
    turn = sa.max(length, 1)
    phase = ctx.emit(gm.ModOp, [sa.mul(rows, cols), turn])[0]
    (angle,) = ctx.emit(graph.DivOp, [as_float64(sa, phase), as_float64(sa, turn)])
    angle = float_op(sa, graph.MulOp, angle, 2 * np.pi)
    cos = ctx.emit(gm.TRIG_OPS["cos"], [angle])[0]
    sin = ctx.emit(gm.TRIG_OPS["sin"], [angle])[0]
    if not inverse:
        sin = ctx.emit(gm.NegOp, [sin])[0]
    if onesided and inverse:  # every bin but DC and Nyquist also stands for its conjugate mirror
        kept = sa.lt(sa.mul(rows, 2), sa.add(length, 1))
        edge = sa.both(sa.lt(0, rows), sa.lt(sa.mul(rows, 2), length))
        weight = sa.where(kept, sa.where(edge, 2, 1), 0)
    else:
        weight = sa.cast(sa.lt(rows, length))
    scale = as_float64(sa, weight)
    if inverse:
        (scale,) = ctx.emit(graph.DivOp, [scale, as_float64(sa, turn)])
    minus_sin = ctx.emit(gm.NegOp, [sin])[0]
    channels = [[cos, sin], [minus_sin, cos]][:c]  # the real part of x; i times its imaginary part
    stacked = [_stack(sa, row[:parts], 2) for row in channels]
    w = _stack(sa, stacked, 1)
    (w,) = ctx.emit(graph.MulOp, [w, sa.reshape(scale, [n, 1, 1, 1])])
    (w,) = ctx.emit(gm.CastOp, [w], to=dtype.value)
    return sa.reshape(w, [dim_mul(n, c), dim_mul(bins, parts)])


def _transform_last(sa: ShapeArithmetic, x: SSAValue, n: Dim, length: SSAValue, bins: Dim, onesided: bool,
                    inverse: bool) -> SSAValue:
    """The DFT of x [..., n, c] along n: [..., bins, parts]."""
    ctx = sa.ctx
    *lead, _, c = ctx.shape(x)
    parts = 1 if onesided and inverse else 2
    w = _matrix(sa, n, c, length, bins, parts, onesided, inverse, graph.dtype_of(x.type))
    (flat,) = ctx.emit(graph.ReshapeOp, [x], shape=[*lead, dim_mul(n, c)])
    (y,) = ctx.emit(graph.MatMulOp, [flat, w])
    return ctx.emit(graph.ReshapeOp, [y], shape=[*lead, bins, parts])[0]


def dft_at_run_time(ctx: _NodeContext, onesided: bool, inverse: bool) -> list[SSAValue]:
    """DFT whose axis (opset 20) or dft_length is known only at run time, or whose signal length is
    dynamic; `signal.py` checks the input's last dim (1 or 2) and that onesided suits it."""
    sa = ShapeArithmetic(ctx)
    x = ctx.input(0)
    *signal, c = ctx.shape(x)
    rank = len(signal) + 1
    axis = _scalar(sa, 2, -2) if ctx.opset >= 20 else sa.const([int(ctx.attrs.get("axis", 1))])
    axis = sa.where(sa.lt(axis, 0), sa.add(axis, rank), axis)
    ok = sa.both(sa.lt(-1, axis), sa.lt(axis, rank - 1))
    which = sa.const(list(range(rank - 1)))
    dims = sa.dims(signal)
    n = sa.reduce("sum", sa.where(sa.eq(which, axis), dims, 0), keepdims=True)
    before = sa.reduce("prod", sa.where(sa.lt(which, axis), dims, 1), keepdims=True)
    after = sa.reduce("prod", sa.where(sa.lt(axis, which), dims, 1), keepdims=True)
    length = _scalar(sa, 1, sa.sub(sa.mul(n, 2), 2) if onesided and inverse else n)
    ok = sa.both(ok, sa.lt(0, length))
    bins = _bins(sa, length, onesided, inverse)
    out = sa.where(sa.eq(which, axis), bins, dims)
    pre, n_dim, post, bins_dim, *out_dims = sa.bind(sa.concat([before, n, after, bins, out]), "dims", ok,
                                                    "the axis is out of range or the DFT length is not positive")
    (x,) = ctx.emit(graph.ReshapeOp, [x], shape=[pre, n_dim, post, c])
    (x,) = ctx.emit(nn.TransposeOp, [x], perm=[0, 2, 1, 3])
    y = _transform_last(sa, x, n_dim, length, bins_dim, onesided, inverse)
    (y,) = ctx.emit(nn.TransposeOp, [y], perm=[0, 2, 1, 3])
    return ctx.emit(graph.ReshapeOp, [y], shape=[*out_dims, ctx.shape(y)[-1]])


def stft_at_run_time(ctx: _NodeContext, window: SSAValue | None, onesided: bool,
                     constant_transform: Callable[[SSAValue, int], SSAValue]) -> list[SSAValue]:
    """STFT whose frame_step or frame_length is known only at run time, or whose signal or window
    length is dynamic: the frame count (samples - length) // step + 1 and the frame positions
    f * step + j are computed, the frames gathered and transformed as one batch; frame_length
    defaults to the window's length. A frame length known at import keeps signal.py's constant
    matrix (`constant_transform(frames, length)`)."""
    sa = ShapeArithmetic(ctx)
    x = ctx.input(0)
    samples = sa.dims([ctx.shape(x)[1]])
    step = _scalar(sa, 1, 0)
    given = sa.dims(ctx.shape(window)) if window is not None else None
    length = _scalar(sa, 3, given) if given is not None or ctx.input(3) is not None else None
    if length is None:
        raise ctx.fail("needs a frame_length or a window")
    static = _static_frame_length(ctx, window)
    ok = sa.both(sa.lt(0, step), sa.both(sa.lt(0, length), sa.lt(length, sa.add(samples, 1))))
    if given is not None:
        ok = sa.both(ok, sa.eq(length, given))
    frames = sa.add(sa.div(sa.sub(samples, length), step), 1)
    why = "the frame step and length must be positive, the length at most the signal's and the window's length"
    if static is None:
        count, n, bins = sa.bind(sa.concat([frames, length, _bins(sa, length, onesided, inverse=False)]), "dims",
                                 ok, why)
    else:
        ((count,), n) = sa.bind(frames, "dims", ok, why), static
    starts = sa.mul(sa.reshape(positions(sa, count), [-1, 1]), step)
    (framed,) = ctx.emit(gt.GatherOp, [x, sa.add(starts, sa.reshape(positions(sa, n), [1, -1]))], axis=1)
    if window is not None:
        (w,) = ctx.emit(graph.ReshapeOp, [window], shape=[n, 1])
        (framed,) = ctx.emit(graph.MulOp, [framed, w])
    if static is not None:
        return [constant_transform(framed, static)]
    return [_transform_last(sa, framed, n, length, bins, onesided, inverse=False)]


def _static_frame_length(ctx: _NodeContext, window: SSAValue | None) -> int | None:
    """The frame length when the import knows it: a constant frame_length, or a window's static length."""
    known = ctx.const_input(3)
    window_length = None if window is None else ctx.shape(window)[0]
    if known is not None and isinstance(window_length, int) and int(known) != window_length:
        raise ctx.fail(f"the window must have frame_length ({int(known)}) values, got {window_length}")
    length = int(known) if known is not None else window_length if isinstance(window_length, int) else None
    if length is not None and length < 1:
        raise ctx.fail(f"frame_length must be >= 1, got {length}")
    return length


def _real(sa: ShapeArithmetic, i: int) -> SSAValue:
    """The node's one-element input i as float64 [1]."""
    v = sa.ctx.input(i)
    if int(np.prod(sa.ctx.shape(v))) != 1:
        raise sa.ctx.fail(f"input {i} must hold one value, got shape {list(sa.ctx.shape(v))}")
    return as_float64(sa, sa.ctx.emit(graph.ReshapeOp, [v], shape=[1])[0])


def _log10(sa: ShapeArithmetic, v: SSAValue) -> SSAValue:
    return float_op(sa, graph.DivOp, sa.ctx.emit(gm.LogOp, [v])[0], float(np.log(10)))


def _pow10(sa: ShapeArithmetic, v: SSAValue) -> SSAValue:
    return sa.ctx.emit(gm.ExpOp, [float_op(sa, graph.MulOp, v, float(np.log(10)))])[0]


def _gather(sa: ShapeArithmetic, v: SSAValue, indices: SSAValue) -> SSAValue:
    return sa.ctx.emit(gt.GatherOp, [v, indices])[0]


def mel_weight_matrix_at_run_time(ctx: _NodeContext, dtype: DType) -> list[SSAValue]:
    """MelWeightMatrix whose arguments are known only at run time: signal.py's `_mel_edges` and
    triangles computed in float64 by graph ops, [dft_length // 2 + 1, num_mel_bins] bound from the
    arguments. num_mel_bins + 2 edges are bound first (a negative count fails there)."""
    sa = ShapeArithmetic(ctx)
    mel_bins, dft_length = _scalar(sa, 0, 0), _scalar(sa, 1, 0)
    rate, low, high = (_real(sa, i) for i in (2, 3, 4))
    count = sa.add(mel_bins, 2)
    add, sub, mul, div = (partial(float_op, sa, c) for c in (graph.AddOp, graph.SubOp, graph.MulOp, graph.DivOp))
    low_mel, high_mel = (mul(_log10(sa, add(div(hz, 700.0), 1.0)), 2595.0) for hz in (low, high))
    step = div(sub(high_mel, low_mel), as_float64(sa, count))
    known = ctx.const_input(0)  # (a dim bound from constants only would not be bound by the run)
    if known is not None and int(known) < 1:
        raise ctx.fail(f"num_mel_bins must be >= 1, got {int(known)}")
    (edge_count,) = [int(known) + 2] if known is not None else sa.bind(count, "edges")
    mels = add(mul(as_float64(sa, positions(sa, edge_count)), step), low_mel)
    hertz = mul(sub(_pow10(sa, div(mels, 2595.0)), 1.0), 700.0)
    scaled = div(mul(as_float64(sa, sa.add(dft_length, 1)), hertz), rate)
    edges = sa.cast(ctx.emit(gm.FloorOp, [scaled])[0])
    bins = sa.add(sa.div(dft_length, 2), 1)
    covered = sa.max(_gather(sa, edges, sa.sub(count, 2)), sa.sub(_gather(sa, edges, sa.sub(count, 1)), 1))
    ok = sa.both(sa.both(sa.lt(0, mel_bins), sa.lt(0, dft_length)), sa.lt(covered, bins))
    ok = sa.both(ok, sa.both(float_op(sa, gm.LessOp, 0.0, rate), float_op(sa, gm.LessOrEqualOp, 0.0, low)))
    ok = sa.both(ok, float_op(sa, gm.LessOp, low, high))
    ok = sa.both(ok, sa.eq(sa.reduce("sum", float_op(sa, gm.LessOp, 2.0 ** 62, scaled)), 0))  # the int64 cast exact
    bins_dim, mels_dim = sa.bind(sa.concat([bins, mel_bins]), "dims", ok,
                                 "the bin counts and the rate must be positive, 0 <= lower edge < upper edge, and "
                                 "the edges within the spectrum")
    j = sa.reshape(positions(sa, bins_dim), [bins_dim, 1])
    left, center, right = (sa.reshape(_gather(sa, edges, sa.add(positions(sa, mels_dim), k)), [1, mels_dim])
                           for k in range(3))
    rising = div(as_float64(sa, sa.sub(j, left)), as_float64(sa, sa.max(sa.sub(center, left), 1)))
    falling = div(as_float64(sa, sa.sub(right, j)), as_float64(sa, sa.max(sa.sub(right, center), 1)))
    up = ctx.emit(gm.WhereOp, [sa.lt(left, center), rising, as_float64(sa, sa.eq(j, center))])[0]
    zero = as_float64(sa, sa.const([0]))
    out = ctx.emit(gm.WhereOp, [sa.both(sa.lt(sa.sub(left, 1), j), sa.lt(j, sa.add(center, 1))), up, zero])[0]
    out = ctx.emit(gm.WhereOp, [sa.both(sa.lt(sa.sub(center, 1), j), sa.lt(j, right)), falling, out])[0]
    return ctx.emit(gm.CastOp, [out], to=dtype.value)
