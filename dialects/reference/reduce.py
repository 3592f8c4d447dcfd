"""Reference semantics of reductions, arg reductions, softmax and layer norm (dialects/graph_reduce.py)."""
from __future__ import annotations

import numpy as np

from pyflame_rt.dialects import graph_reduce as gr
from pyflame_rt.dialects.reference.evaluator import dim_value, reference


def _lowest(dtype, sign: int):
    """The identity of max (sign=-1) / min (sign=+1), so empty reductions are defined."""
    if dtype.kind == "f":
        return sign * np.inf
    info = np.iinfo(dtype)
    return info.max if sign > 0 else info.min


_KINDS = {
    "sum": lambda x, a, k: np.sum(x, axis=a, keepdims=k),
    "mean": lambda x, a, k: np.mean(x, axis=a, keepdims=k),
    "max": lambda x, a, k: np.max(x, axis=a, keepdims=k, initial=_lowest(x.dtype, -1)),
    "min": lambda x, a, k: np.min(x, axis=a, keepdims=k, initial=_lowest(x.dtype, 1)),
    "prod": lambda x, a, k: np.prod(x, axis=a, keepdims=k),
    "l1": lambda x, a, k: np.sum(np.abs(x), axis=a, keepdims=k),
    "l2": lambda x, a, k: np.sqrt(np.sum(x * x, axis=a, keepdims=k)),
    "sum_square": lambda x, a, k: np.sum(x * x, axis=a, keepdims=k),
    "log_sum": lambda x, a, k: np.log(np.sum(x, axis=a, keepdims=k)),
    "log_sum_exp": lambda x, a, k: _log_sum_exp(x, a, k),
}


def _log_sum_exp(x, axes, keepdims):
    m = np.max(x, axis=axes, keepdims=True, initial=-np.inf)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axes)


@reference(gr.ReduceOp)
def _reduce(op, x):
    with np.errstate(divide="ignore", invalid="ignore"):  # empty means / log(0) are defined by ONNX as nan / -inf
        return _KINDS[op.kind.data](x[0], op.axes_for(x[0].ndim), op.keepdims.value.data)


@reference(gr.ArgReduceOp)
def _arg_reduce(op, x):
    data = x[0]
    axis = op.axis_in(data.ndim)
    pick = np.argmax if op.kind.data == "argmax" else np.argmin
    if op.select_last_index.value.data:
        idx = data.shape[axis] - 1 - pick(np.flip(data, axis), axis=axis)
    else:
        idx = pick(data, axis=axis)
    return np.expand_dims(idx, axis) if op.keepdims.value.data else idx


def _rows(op, data: np.ndarray):
    """The input as (view, axis) so the op normalizes along one axis (legacy: coerced to 2-D at `axis`)."""
    axis = op.axis.value.data
    if op.legacy.value.data:
        axis = axis + data.ndim if axis < 0 else axis
        return data.reshape(int(np.prod(data.shape[:axis])), -1), 1
    return data, op.axis_in(data.ndim)


@reference(gr.SoftmaxOp, gr.LogSoftmaxOp)
def _softmax(op, x):
    rows, axis = _rows(op, x[0])
    shifted = rows - np.max(rows, axis=axis, keepdims=True)
    if isinstance(op, gr.LogSoftmaxOp):
        out = shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    else:
        e = np.exp(shifted)
        out = e / np.sum(e, axis=axis, keepdims=True)
    return out.reshape(x[0].shape)


@reference(gr.LayerNormOp)
def _layer_norm(op, x):
    """Statistics in float64: a constant row has its exact mean and a zero variance."""
    data = x[0]
    wide = data.astype(np.float64)
    axes = tuple(range(op.axis_in(data.ndim), data.ndim))
    mean = np.mean(wide, axis=axes, keepdims=True)
    inv_std = 1 / np.sqrt(np.mean(np.square(wide - mean), axis=axes, keepdims=True) + op.epsilon.value.data)
    y = (wide - mean) * inv_std * x[1]
    y = (y + x[2] if len(x) > 2 else y).astype(data.dtype)
    # Mean / InvStdDev only when the op has those results
    return (y, mean.astype(data.dtype), inv_std.astype(data.dtype))[:len(op.results)]


@reference(gr.TopKOp)
def _topk(op, x):
    data = x[0]
    axis = op.axis_in(data.ndim)
    key = -data if op.largest.value.data else data  # a stable sort keeps the lower index first on ties
    if data.dtype.kind == "u" and op.largest.value.data:
        key = np.iinfo(data.dtype).max - data
    idx = np.take(np.argsort(key, axis=axis, kind="stable"), np.arange(dim_value(op.k_dim())), axis=axis)
    return np.take_along_axis(data, idx, axis=axis), idx.astype(np.int64)


@reference(gr.CumSumOp, gr.CumProdOp)
def _cumulative(op, x):
    data = x[0]
    axis = op.axis_in(data.ndim)
    src = np.flip(data, axis) if op.reverse.value.data else data
    if op.exclusive.value.data and src.shape[axis]:  # each element's total of the ones before it: shift in the identity
        first = np.ones_like if isinstance(op, gr.CumProdOp) else np.zeros_like
        src = np.concatenate([first(np.take(src, [0], axis=axis)), np.delete(src, -1, axis=axis)], axis=axis)
    out = (np.cumprod if isinstance(op, gr.CumProdOp) else np.cumsum)(src, axis=axis, dtype=data.dtype)
    return np.flip(out, axis) if op.reverse.value.data else out
