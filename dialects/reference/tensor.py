"""Reference semantics of the tensor construction / indexing ops (see dialects/graph_tensor.py)."""
from __future__ import annotations

import numpy as np

from pyflame_rt.dialects import graph_tensor as gt
from pyflame_rt.dialects.graph import dtype_of, static_shape
from pyflame_rt.dialects.symbolic import parse_dim
from pyflame_rt.dtype import DType
from pyflame_rt.errors import InputError
from pyflame_rt.dialects.reference.evaluator import bind_dims, dim_value, reference


def _dims(attr) -> tuple[int, ...]:
    return tuple(dim_value(d) for d in gt.attr_dims(attr))


@reference(gt.DimValuesOp)
def _dim_values(op, x):
    values = [dim_value(parse_dim(s.data)) for s in op.values.data]
    return np.array(values, dtype_of(op.result.type).numpy).reshape(static_shape(op.result.type))


@reference(gt.GatherOp)
def _gather(op, x):
    data, idx = x
    axis = op.axis_in(data.ndim)
    n = data.shape[axis]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise InputError(f"Gather index out of range [-{n}, {n - 1}]: {int(idx.min())}..{int(idx.max())}")
    return np.take(data, np.where(idx < 0, idx + n, idx), axis=axis)


@reference(gt.BindDimsOp)
def _bind(op, x):
    bind_dims(dict(zip(op.dim_names(), (int(v) for v in x[0].reshape(-1)))))
    return x[0]


@reference(gt.NonZeroOp)
def _nonzero(op, x):
    out = np.array(np.nonzero(x[0]), np.int64).reshape(x[0].ndim, -1)
    bind_dims({op.count.data: out.shape[1]})
    return out


@reference(gt.UniqueOp)
def _unique(op, x):
    data = x[0]
    axis = op.axis_in(data.ndim)
    slices = data.reshape(-1, 1) if axis is None else np.moveaxis(data, axis, 0).reshape(data.shape[axis], -1)
    keys = [tuple(row) for row in slices.tolist()]
    first: dict[tuple, int] = {}
    for position, key in enumerate(keys):
        first.setdefault(key, position)
    order = sorted(first) if op.sorted.value.data else list(first)
    rank = {key: r for r, key in enumerate(order)}
    positions = np.array([first[k] for k in order], np.int64)
    picked = data.reshape(-1)[positions] if axis is None else np.take(data, positions, axis=axis)
    bind_dims({op.count.data: len(order)})
    inverse = np.array([rank[k] for k in keys], np.int64)
    counts = np.bincount(inverse, minlength=len(order)).astype(np.int64)
    return [picked, positions, inverse, counts]


@reference(gt.ConstantOfShapeOp)
def _constant_of_shape(op, x):
    return np.full(_dims(op.shape), op.value.value.data, DType(op.dtype.data).numpy)


@reference(gt.ExpandOp)
def _expand(op, x):
    shape = np.broadcast_shapes(x[0].shape, _dims(op.shape))
    return np.broadcast_to(x[0], shape).copy()


@reference(gt.BitCastOp)
def _bitcast(op, x):
    return x[0].view(DType(op.to.data).numpy)


@reference(gt.RangeOp)
def _range(op, x):
    size = dim_value(parse_dim(op.size.data))
    return op.start.value.data + op.delta.value.data * np.arange(size, dtype=np.float64)


@reference(gt.TriluOp)
def _trilu(op, x):
    k = op.k.value.data
    return np.triu(x[0], k) if op.upper.value.data else np.tril(x[0], k)


@reference(gt.EinsumOp)
def _einsum(op, x):
    return np.einsum(op.equation.data, *x)
