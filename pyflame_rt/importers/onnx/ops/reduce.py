"""Converters for reductions (axes as attribute or, from opset 13 / 18, as input), ArgMax /
ArgMin, Softmax / LogSoftmax (coerced-2-D before opset 13), LayerNormalization."""
from __future__ import annotations

import numpy as np
from xdsl.ir import SSAValue

from pyflame_rt.dialects import graph, graph_math as gm, graph_reduce as gr
from pyflame_rt.dtype import DType
from pyflame_rt.errors import ShapeMismatchError
from pyflame_rt.importers.onnx.converters import _NodeContext, converter
from pyflame_rt.importers.onnx.run_time_shapes import ShapeArithmetic, known_only_at_run_time

_REDUCE = {"ReduceSum": "sum", "ReduceMean": "mean", "ReduceMax": "max", "ReduceMin": "min",
           "ReduceProd": "prod", "ReduceL1": "l1", "ReduceL2": "l2", "ReduceSumSquare": "sum_square",
           "ReduceLogSum": "log_sum", "ReduceLogSumExp": "log_sum_exp"}


def _axes_as_input(op_type: str, opset: int) -> bool:
    return opset >= (13 if op_type == "ReduceSum" else 18)


@converter(*_REDUCE)
def _reduce(ctx: _NodeContext):
    kind = _REDUCE[ctx.node.op_type]
    if graph.dtype_of(ctx.input(0).type) is not DType.BOOL or kind not in ("max", "min"):
        return [_reduce_of(ctx, ctx.input(0), kind)]
    # bool max / min are any / all: int32 0 / 1 reduced, then > 0 (an empty set's max, the int32
    # minimum, is False; its min, the maximum, True)
    (x,) = ctx.emit(gm.CastOp, [ctx.input(0)], to=DType.INT32.value)
    zero = ctx.importer.add_constant(f"{ctx.node.output[0]}_zero", np.zeros((), np.int32))
    return ctx.emit(gm.GreaterOp, [_reduce_of(ctx, x, kind), zero])


def _reduce_of(ctx: _NodeContext, x: SSAValue, kind: str) -> SSAValue:
    keepdims = bool(ctx.attrs.get("keepdims", 1))
    if _axes_as_input(ctx.node.op_type, ctx.opset):
        if known_only_at_run_time(ctx, 1):
            return _reduce_run_time_axes(ctx, x, kind, keepdims)
        axes = [int(a) for a in np.asarray(ctx.const_input(1)).ravel()] if ctx.const_input(1) is not None else []
        if not axes and ctx.attrs.get("noop_with_empty_axes", 0):
            return ctx.emit(graph.IdentityOp, [x])[0]
    else:
        axes = [int(a) for a in ctx.attrs.get("axes", [])]
    return ctx.emit(gr.ReduceOp, [x], kind=kind, axes=axes, keepdims=keepdims)[0]


def _reduce_run_time_axes(ctx: _NodeContext, x: SSAValue, kind: str, keepdims: bool) -> SSAValue:
    """Axes known only at run time: each dim i splits into a kept part o_i and a reduced part r_i
    (o_i = 1, r_i = the dim if i is reduced, else the other way round); the input viewed as
    [o_0, r_0, o_1, r_1, ...] is reduced over the r_i, then viewed as the result's dims."""
    sa = ShapeArithmetic(ctx)
    shape = ctx.shape(x)
    rank = len(shape)
    axes = sa.operand(1)
    n_axes = sa.size(axes)
    if n_axes > rank:
        raise ShapeMismatchError(f"{n_axes} reduce axes for a tensor of rank {rank}")
    counts = sa.axis_counts(axes, rank)
    dims = sa.dims(shape)
    reduced = sa.lt(0, counts)
    split = sa.concat([sa.reshape(sa.where(reduced, 1, dims), [rank, 1]),
                       sa.reshape(sa.where(reduced, dims, 1), [rank, 1])], axis=1)
    parts = sa.bind(sa.reshape(split, [2 * rank]), "axes", sa.axes_valid(counts, n_axes),
                    "an axis is out of range or repeated")
    (x,) = ctx.emit(graph.ReshapeOp, [x], shape=parts)
    (y,) = ctx.emit(gr.ReduceOp, [x], kind=kind, axes=list(range(1, 2 * rank, 2)), keepdims=True)
    if keepdims or rank == n_axes:
        kept = parts[0::2] if keepdims else []
    else:
        kept = sa.bind(sa.unselected(dims, counts, rank - n_axes), "kept")
    return ctx.emit(graph.ReshapeOp, [y], shape=kept)[0]


@converter("ArgMax", "ArgMin")
def _arg(ctx: _NodeContext):
    return ctx.emit(gr.ArgReduceOp, [ctx.input(0)], kind=ctx.node.op_type.lower(),
                    axis=int(ctx.attrs.get("axis", 0)), keepdims=bool(ctx.attrs.get("keepdims", 1)),
                    select_last_index=bool(ctx.attrs.get("select_last_index", 0)))


@converter("Softmax", "LogSoftmax")
def _softmax(ctx: _NodeContext):
    legacy = ctx.opset < 13
    axis = int(ctx.attrs.get("axis", 1 if legacy else -1))
    op_cls = gr.SoftmaxOp if ctx.node.op_type == "Softmax" else gr.LogSoftmaxOp
    return ctx.emit(op_cls, [ctx.input(0)], axis=axis, legacy=legacy)


@converter("LayerNormalization")
def _layer_norm(ctx: _NodeContext):
    if ctx.attrs.get("stash_type", 1) != 1:
        raise ctx.fail("stash_type other than float32 is not supported")
    return ctx.emit(gr.LayerNormOp, [ctx.input(0), ctx.input(1), ctx.input(2)],
                    axis=int(ctx.attrs.get("axis", -1)), epsilon=float(ctx.attrs.get("epsilon", 1e-5)),
                    stats=any(ctx.node.output[1:]))


@converter("TopK")
def _topk(ctx: _NodeContext):
    if ctx.opset < 10:
        k = ctx.attrs["k"]
    else:
        known = ctx.dims_input(1)
        if known is None:
            raise ctx.fail("k must be known at compile time or be a graph input")
        k = known.values.reshape(-1)[0]
    if ctx.attrs.get("sorted", 1) == 0:
        ctx.importer.warnings.append(f"TopK '{ctx.node.name}': sorted=0 returns sorted results")
    return ctx.emit(gr.TopKOp, [ctx.input(0)], k=k, axis=int(ctx.attrs.get("axis", -1)),
                    largest=bool(ctx.attrs.get("largest", 1)))


@converter("CumSum", "CumProd")
def _cumulative(ctx: _NodeContext):
    op_cls = gr.CumSumOp if ctx.node.op_type == "CumSum" else gr.CumProdOp
    props = {"exclusive": bool(ctx.attrs.get("exclusive", 0)), "reverse": bool(ctx.attrs.get("reverse", 0))}
    if known_only_at_run_time(ctx, 1):
        return _cumulative_run_time_axis(ctx, op_cls, props)
    return ctx.emit(op_cls, [ctx.input(0)], axis=int(np.asarray(ctx.const_input(1)).reshape(-1)[0]), **props)


def _cumulative_run_time_axis(ctx: _NodeContext, op_cls, props: dict):
    """An axis known only at run time: the input viewed as [outer, n, inner] around it, scanned
    along axis 1 and viewed back."""
    sa = ShapeArithmetic(ctx)
    x = ctx.input(0)
    shape = ctx.shape(x)
    axis = sa.operand(1)
    if sa.size(axis) != 1:
        raise ShapeMismatchError(f"the axis input has {sa.size(axis)} elements, not 1")
    at = sa.axis_counts(axis, len(shape))
    seen = sa.cumsum(at)  # 1 from the axis on
    dims = sa.dims(shape)
    outer = sa.reduce("prod", sa.where(sa.eq(seen, 0), dims, 1), keepdims=True)
    inner = sa.reduce("prod", sa.where(sa.lt(at, seen), dims, 1), keepdims=True)
    around = sa.bind(sa.concat([outer, sa.reduce("sum", sa.mul(at, dims), keepdims=True), inner]), "axis",
                     sa.axes_valid(at, 1), "the axis is out of range")
    (y,) = ctx.emit(graph.ReshapeOp, [x], shape=around)
    (y,) = ctx.emit(op_cls, [y], axis=1, **props)
    return ctx.emit(graph.ReshapeOp, [y], shape=list(shape))
