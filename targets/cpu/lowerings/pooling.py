"""MaxPool / AveragePool -> pad + sliding-window kernel; global pools -> per-plane reductions."""
from __future__ import annotations

import functools

import numpy as np

from pyflame_rt.dialects import graph_nn as nn
from pyflame_rt.dialects.symbolic import numel
from pyflame_rt.targets.cpu.lowerings import lowering
from pyflame_rt.targets.cpu.lowerings.conv import as_2d, emit_window, padded_input, require_float32, windowed_2d
from pyflame_rt.targets.cpu.lowerings.normalization import emit_plane


def window_counts(size: int, out: int, k: int, s: int, d: int, pb: int, pe: int, include_pad: bool):
    """Per output position: how many taps fall inside the input (or its explicit padding)."""
    lo, hi = (-pb, size + pe) if include_pad else (0, size)
    taps = np.arange(out)[:, None] * s - pb + np.arange(k)[None, :] * d
    return ((taps >= lo) & (taps < hi)).sum(axis=1)


@lowering(nn.MaxPoolOp, nn.AveragePoolOp)
def _lower_pool(L, op) -> None:
    x_shape, out_shape, strides, dilations, pads = windowed_2d(L, op, "pooling", max_spatial=3)
    _, kernel = as_2d(L.shapes[op.input], op.ints("kernel_shape"), 1)
    is_max = isinstance(op, nn.MaxPoolOp)
    nsp = len(kernel)
    # ceil_mode: extend the end padding until every window lies inside the padded input
    full = list(pads)
    for i in range(nsp):
        need = (out_shape[2 + i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1
        full[nsp + i] = max(pads[nsp + i], need - x_shape[2 + i] - pads[i])
    xp, xp_shape = padded_input(L, op.input, x_shape, full, value=float("-inf") if is_max else 0.0)
    weights = 0
    if not is_max:
        include = op.count_include_pad.value.data
        cnt = [window_counts(x_shape[2 + i], out_shape[2 + i], kernel[i], strides[i], dilations[i],
                             pads[i], pads[nsp + i], include) for i in range(nsp)]
        inv = 1.0 / np.maximum(functools.reduce(np.multiply.outer, cnt), 1)
        weights = L.add_weight("avg_pool_inv_count", inv.astype(np.float32))
    emit_window(L, "max" if is_max else "avg", xp, xp_shape, L.result_loc(op.result), out_shape,
                weights=weights, kernel=kernel, strides=strides, dilations=dilations)


@lowering(nn.GlobalAveragePoolOp, nn.GlobalMaxPoolOp)
def _lower_global_pool(L, op) -> None:
    require_float32(L, op)
    shape = L.shapes[op.input]
    mode = "mean" if isinstance(op, nn.GlobalAveragePoolOp) else "max"
    emit_plane(L, op, mode, L.loc(op.input), L.result_loc(op.result), shape[0], shape[1], numel(shape[2:]))
