"""Operators imported as compositions of existing graph ops (what their ONNX function bodies
compute), so they reuse the fused row, pool and elementwise kernels: MeanVarianceNormalization,
LpNormalization, GroupNormalization, LpPool, Hardmax, EyeLike, ReverseSequence, Swish, SwiGLU."""
from __future__ import annotations

import numpy as np

from pyflame_rt.dialects import graph, graph_index as gi, graph_math as gm, graph_nn as nn, graph_reduce as gr
from pyflame_rt.dialects import graph_tensor as gt
from pyflame_rt.dialects.graph import dtype_of
from pyflame_rt.dtype import DType
from pyflame_rt.importers.onnx.converters import _NodeContext, converter
from pyflame_rt.importers.onnx.ops.nn import _pool_props
from pyflame_rt.limits import check_compile_array


def _const(ctx: _NodeContext, what: str, arr: np.ndarray):
    return ctx.importer.add_constant(f"{ctx.node.output[0]}_{what}", np.asarray(arr))


def _check_size(ctx: _NodeContext, count: int, dtype, what: str) -> None:
    """Before building a constant of `count` elements from the model's dims."""
    check_compile_array(count * np.dtype(dtype).itemsize,
                        f"{ctx.node.op_type} node '{ctx.node.name or ctx.node.output[0]}' ({what})")


def _np_dtype(v) -> np.dtype:
    return dtype_of(v.type).numpy


@converter("MeanVarianceNormalization")
def _mvn(ctx: _NodeContext):
    """(x - mean) / (std + 1e-9), mean and std over `axes` (default N, H, W)."""
    x = ctx.input(0)
    axes = [int(a) for a in ctx.attrs.get("axes", [0, 2, 3])]
    (mean,) = ctx.emit(gr.ReduceOp, [x], kind="mean", axes=axes, keepdims=True)
    (d,) = ctx.emit(graph.SubOp, [x, mean])
    (sq,) = ctx.emit(graph.MulOp, [d, d])
    (var,) = ctx.emit(gr.ReduceOp, [sq], kind="mean", axes=axes, keepdims=True)
    (std,) = ctx.emit(gm.SqrtOp, [var])
    (den,) = ctx.emit(graph.AddOp, [std, _const(ctx, "eps", np.array(1e-9, _np_dtype(x)))])
    return ctx.emit(graph.DivOp, [d, den])


@converter("LpNormalization")
def _lp_normalization(ctx: _NodeContext):
    """x / ||x||_p along `axis`; an all-zero row stays zero (its norm is replaced by 1)."""
    x, p = ctx.input(0), int(ctx.attrs.get("p", 2))
    if p not in (1, 2):
        raise ctx.fail(f"p must be 1 or 2, got {p}")
    (norm,) = ctx.emit(gr.ReduceOp, [x], kind=f"l{p}", axes=[int(ctx.attrs.get("axis", -1))], keepdims=True)
    dt = _np_dtype(x)
    (zero,) = ctx.emit(gm.EqualOp, [norm, _const(ctx, "zero", np.array(0, dt))])
    (safe,) = ctx.emit(gm.WhereOp, [zero, _const(ctx, "one", np.array(1, dt)), norm])
    return ctx.emit(graph.DivOp, [x, safe])


@converter("GroupNormalization")
def _group_norm(ctx: _NodeContext):
    """InstanceNorm of x viewed as [N, G, C/G * spatial] (unit scale), back to x's shape, then the
    per-channel scale and bias."""
    x, scale, bias = ctx.input(0), ctx.input(1), ctx.input(2)
    shape, g = ctx.shape(x), int(ctx.attrs["num_groups"])
    if not all(isinstance(d, int) for d in shape[1:]) or shape[1] % g:
        raise ctx.fail(f"needs static channel and spatial dims with channels divisible by {g} groups")
    c, dt = shape[1], _np_dtype(x)
    (grouped,) = ctx.emit(graph.ReshapeOp, [x], shape=[0, g, -1])
    (normed,) = ctx.emit(nn.InstanceNormOp, [grouped, _const(ctx, "ones", np.ones(g, dt)),
                                            _const(ctx, "zeros", np.zeros(g, dt))],
                         epsilon=float(ctx.attrs.get("epsilon", 1e-5)))
    (y,) = ctx.emit(graph.ReshapeOp, [normed], shape=[0, *shape[1:]])
    per_channel = [c] + [1] * (len(shape) - 2)
    for v, op in ((scale, graph.MulOp), (bias, graph.AddOp)):
        if tuple(ctx.shape(v)) != (c,):  # the deprecated opset-18 form had one value per group
            raise ctx.fail(f"scale and bias must have one value per channel ({c})")
        (v,) = ctx.emit(graph.ReshapeOp, [v], shape=per_channel)
        (y,) = ctx.emit(op, [y, v])
    return [y]


@converter("LpPool")
def _lp_pool(ctx: _NodeContext):
    """(sum over the window of |x|^p)^(1/p): an AveragePool counting the (zero) pads, times the
    window size."""
    x, p = ctx.input(0), float(ctx.attrs.get("p", 2))
    dt = _np_dtype(x)
    (a,) = ctx.emit(gm.AbsOp, [x])
    (a,) = ctx.emit(gm.PowOp, [a, _const(ctx, "p", np.array(p, dt))])
    props = _pool_props(ctx)
    (s,) = ctx.emit(nn.AveragePoolOp, [a], **props, count_include_pad=True)
    (s,) = ctx.emit(graph.MulOp, [s, _const(ctx, "window", np.array(np.prod(props["kernel_shape"]), dt))])
    return ctx.emit(gm.PowOp, [s, _const(ctx, "inv_p", np.array(1 / p, dt))])


@converter("Hardmax")
def _hardmax(ctx: _NodeContext):
    """1 at the first maximum along `axis`, 0 elsewhere: ArgMax compared with the axis positions.
    Before opset 13 the input is coerced to 2-D at `axis`, which is the same only for the last axis."""
    x = ctx.input(0)
    shape = ctx.shape(x)
    legacy = ctx.opset < 13
    axis = gr.normalize_axis(int(ctx.attrs.get("axis", 1 if legacy else -1)), len(shape))
    if legacy and axis != len(shape) - 1:
        raise ctx.fail("before opset 13 only the last axis is supported (the input is coerced to 2-D)")
    if not isinstance(shape[axis], int):
        raise ctx.fail("the hardmax axis must be static")
    (am,) = ctx.emit(gr.ArgReduceOp, [x], kind="argmax", axis=axis, keepdims=True)
    _check_size(ctx, shape[axis], np.int64, "positions")
    positions = np.arange(shape[axis], dtype=np.int64).reshape([-1] + [1] * (len(shape) - axis - 1))
    (hit,) = ctx.emit(gm.EqualOp, [am, _const(ctx, "positions", positions)])
    return ctx.emit(gm.CastOp, [hit], to=dtype_of(x.type).value)


@converter("EyeLike")
def _eye_like(ctx: _NodeContext):
    """A constant: ones on diagonal k of a matrix of x's (static) shape."""
    shape = ctx.shape(ctx.input(0))
    if len(shape) != 2 or not all(isinstance(d, int) for d in shape):
        raise ctx.fail("needs a 2-D input of static shape")
    dtype = DType.from_onnx(ctx.attrs["dtype"]) if "dtype" in ctx.attrs else dtype_of(ctx.input(0).type)
    _check_size(ctx, shape[0] * shape[1], dtype.numpy, "the identity matrix")
    return [_const(ctx, "eye", np.eye(*shape, k=int(ctx.attrs.get("k", 0)), dtype=dtype.numpy))]


@converter("ReverseSequence")
def _reverse_sequence(ctx: _NodeContext):
    """GatherElements along the time axis at index len[b] - 1 - t for t < len[b], else t; a length
    above the time dim makes an index out of range, which the gather reports at run time."""
    x, lens = ctx.input(0), ctx.input(1)
    shape = ctx.shape(x)
    t_axis, b_axis = int(ctx.attrs.get("time_axis", 0)), int(ctx.attrs.get("batch_axis", 1))
    if sorted((t_axis, b_axis)) != [0, 1] or not isinstance(shape[t_axis], int):
        raise ctx.fail("needs time and batch axes 0 and 1 and a static time dim")
    along = [-1 if d == t_axis else 1 for d in range(len(shape))]
    _check_size(ctx, shape[t_axis], np.int64, "positions")
    pos = _const(ctx, "positions", np.arange(shape[t_axis], dtype=np.int64).reshape(along))
    (lens,) = ctx.emit(graph.ReshapeOp, [lens], shape=[-1 if d == b_axis else 1 for d in range(len(shape))])
    (inside,) = ctx.emit(gm.LessOp, [pos, lens])
    (last,) = ctx.emit(graph.SubOp, [lens, _const(ctx, "one", np.array(1, np.int64))])
    (mirrored,) = ctx.emit(graph.SubOp, [last, pos])
    (idx,) = ctx.emit(gm.WhereOp, [inside, mirrored, pos])
    (idx,) = ctx.emit(gt.ExpandOp, [idx], shape=list(shape))
    return ctx.emit(gi.GatherElementsOp, [x, idx], axis=t_axis)


def _swish(ctx: _NodeContext, x):
    """x * sigmoid(alpha * x)."""
    alpha = float(ctx.attrs.get("alpha", 1.0))
    (ax,) = ctx.emit(graph.MulOp, [x, _const(ctx, "alpha", np.array(alpha, _np_dtype(x)))]) if alpha != 1 else (x,)
    (gate,) = ctx.emit(gm.SigmoidOp, [ax])
    return ctx.emit(graph.MulOp, [x, gate])


@converter("Swish")
def _swish_op(ctx: _NodeContext):
    return _swish(ctx, ctx.input(0))


@converter("SwiGLU")
def _swiglu(ctx: _NodeContext):
    """Swish(A) * B, A and B of one shape."""
    a, b = ctx.input(0), ctx.input(1)
    if ctx.shape(a) != ctx.shape(b):
        raise ctx.fail(f"A and B must have one shape, got {ctx.shape(a)} and {ctx.shape(b)}")
    (gated,) = _swish(ctx, a)
    return ctx.emit(graph.MulOp, [gated, b])
