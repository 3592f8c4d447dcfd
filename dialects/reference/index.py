"""Reference semantics of the element-wise indexing ops (see dialects/graph_index.py)."""
from __future__ import annotations

import numpy as np

from pyflame_rt.dialects import graph_index as gi
from pyflame_rt.errors import InputError
from pyflame_rt.dialects.reference.evaluator import reference

_COMBINE = {"none": lambda old, new: new, "add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _normalized(op, idx: np.ndarray, sizes) -> np.ndarray:
    """Indices with negatives counted from the end; InputError if any is outside its axis."""
    sizes = np.asarray(sizes, dtype=np.int64)
    idx = idx.astype(np.int64)
    if idx.size and ((idx < -sizes) | (idx >= sizes)).any():
        raise InputError(f"{op.name}: an index is outside its axis")
    return np.where(idx < 0, idx + sizes, idx)


@reference(gi.GatherElementsOp)
def _gather_elements(op, x):
    data, idx = x
    axis = gi.elements_layout(data.shape, idx.shape, op.axis.value.data)
    return np.take_along_axis(data, _normalized(op, idx, data.shape[axis]), axis=axis)


@reference(gi.ScatterElementsOp)
def _scatter_elements(op, x):
    data, idx, updates = x
    axis = gi.elements_layout(data.shape, idx.shape, op.axis.value.data)
    idx = _normalized(op, idx, data.shape[axis])
    out, combine = data.copy(), _COMBINE[op.reduction.data]
    for pos in np.ndindex(*idx.shape):
        target = pos[:axis] + (idx[pos],) + pos[axis + 1:]
        out[target] = combine(out[target], updates[pos])
    return out


def _tuples(op, data: np.ndarray, idx: np.ndarray, b: int):
    """(batch position, position in indices, data index of the addressed slice) for every index tuple."""
    k = gi.nd_layout(data.shape, idx.shape, b)
    idx = _normalized(op, idx, data.shape[b:b + k])
    for pos in np.ndindex(*idx.shape[:-1]):
        yield pos, pos[:b] + tuple(int(v) for v in idx[pos])


@reference(gi.GatherNDOp)
def _gather_nd(op, x):
    data, idx = x
    b = op.batch_dims.value.data
    out = np.empty(tuple(idx.shape[:-1]) + data.shape[b + idx.shape[-1]:], data.dtype)
    for pos, where in _tuples(op, data, idx, b):
        out[pos] = data[where]
    return out


@reference(gi.ScatterNDOp)
def _scatter_nd(op, x):
    data, idx, updates = x
    out, combine = data.copy(), _COMBINE[op.reduction.data]
    for pos, where in _tuples(op, data, idx, 0):
        out[where] = combine(out[where], updates[pos])
    return out
