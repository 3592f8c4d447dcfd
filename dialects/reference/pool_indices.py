"""Reference semantics of max pooling with indices and of MaxUnpool (see dialects/graph_pool_indices.py)."""
from __future__ import annotations

import itertools

import numpy as np

from pyflame_rt.dialects import graph_pool_indices as pi
from pyflame_rt.errors import InputError
from pyflame_rt.dialects.reference.evaluator import reference
from pyflame_rt.dialects.reference.nn import _tap_slices


def flat_indices(shape, column_major: bool) -> np.ndarray:
    """Each element's offset in the flattened tensor, its spatial dims row- or column-major."""
    n, c, *sp = shape
    size = int(np.prod(sp))
    spatial = np.arange(size).reshape(sp[::-1]).T if column_major else np.arange(size).reshape(sp)
    return np.arange(n * c).reshape(n, c, *[1] * len(sp)) * size + spatial


@reference(pi.MaxPoolWithIndicesOp)
def _max_pool_with_indices(op, x):
    data = x[0].astype(np.float64)
    nsp = data.ndim - 2
    k, strides, dilations, pads = (op.ints(n) for n in ("kernel_shape", "strides", "dilations", "pads"))
    out_sp = list(op.result.type.get_shape()[2:])
    ends = [max(pads[nsp + i], (out_sp[i] - 1) * strides[i] + (k[i] - 1) * dilations[i] + 1 - data.shape[2 + i]
                - pads[i]) for i in range(nsp)]
    widths = [(0, 0), (0, 0)] + [(pads[i], ends[i]) for i in range(nsp)]
    xp = np.pad(data, widths, constant_values=-np.inf)
    ip = np.pad(flat_indices(data.shape, op.column_major), widths, constant_values=-1)
    acc = np.full((*data.shape[:2], *out_sp), -np.inf)
    idx = np.full(acc.shape, -1, np.int64)
    for tap in itertools.product(*(range(n) for n in k)):
        sl = _tap_slices(tap, dilations, strides, out_sp)
        better = xp[sl] > acc  # strictly: the first maximum wins, padding (-inf) never does
        acc, idx = np.where(better, xp[sl], acc), np.where(better, ip[sl], idx)
    return acc, idx


@reference(pi.MaxUnpoolOp)
def _max_unpool(op, x):
    data, indices = x[0], x[1].astype(np.int64)
    shape = (*data.shape[:2], *op.spatial)
    if len(x) > 2 and list(x[2]) != list(shape):
        raise InputError(f"MaxUnpool: output_shape {list(x[2])} differs from {list(shape)}")
    box = np.zeros(int(np.prod(data.shape[:2])) * int(np.prod(op.index_box)), data.dtype)
    if indices.size and ((indices < 0) | (indices >= box.size)).any():
        raise InputError(f"MaxUnpool: an index is outside [0, {box.size})")
    box[indices.ravel()] = data.ravel()
    out = np.zeros(shape, data.dtype)
    out[tuple(slice(0, d) for d in (*data.shape[:2], *op.index_box))] = box.reshape(*data.shape[:2], *op.index_box)
    return out
