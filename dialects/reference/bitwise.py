"""Reference semantics of the bitwise ops (see dialects/graph_bitwise.py)."""
from __future__ import annotations

import numpy as np

from pyflame_rt.dialects import graph_bitwise as gb
from pyflame_rt.dialects.reference.evaluator import reference

_UFUNCS = {gb.BitwiseAndOp: np.bitwise_and, gb.BitwiseOrOp: np.bitwise_or, gb.BitwiseXorOp: np.bitwise_xor,
           gb.BitwiseNotOp: np.invert}


@reference(*_UFUNCS)
def _ufunc(op, x):
    return _UFUNCS[type(op)](*x)


@reference(gb.BitShiftOp)
def _bit_shift(op, x):
    """Amounts outside [0, bits) leave the sign fill (numpy's shifts are undefined there)."""
    v, amount = np.broadcast_arrays(*x)
    bits = v.dtype.itemsize * 8
    ok = (amount >= 0) & (amount < bits)
    safe = np.where(ok, amount, 0).astype(v.dtype)
    if op.direction.data == "left":
        return np.where(ok, np.left_shift(v, safe), 0).astype(v.dtype)
    return np.where(ok, np.right_shift(v, safe), np.where(v < 0, -1, 0)).astype(v.dtype)
