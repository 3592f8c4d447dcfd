"""Signal operators: window functions and MelWeightMatrix become constants (their sizes are known at
import; a window whose size is a run-time value is its ONNX function body), DFT and STFT one GEMM
each by a constant matrix of cos / sin values (the transform length is static), so they run on the
GEMM kernels. Arguments known only at run time take run_time_signal.py's forms."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from pyflame_rt.dialects import graph, graph_nn as nn, graph_tensor as gt
from pyflame_rt.dtype import DType
from pyflame_rt.importers.onnx.converters import _NodeContext, converter
from pyflame_rt.importers.onnx.ops.composite import _check_size, _const, _np_dtype
from pyflame_rt.importers.onnx.ops.run_time_signal import (
    dft_at_run_time, mel_weight_matrix_at_run_time, stft_at_run_time,
)
from pyflame_rt.importers.onnx.run_time_shapes import known_only_at_run_time

# cos-series coefficients a_k of w[n] = sum_k (-1)^k a_k cos(2 pi k n / N), as the ONNX spec defines them
_WINDOWS = {"HannWindow": (0.5, 0.5), "HammingWindow": (25 / 46, 21 / 46), "BlackmanWindow": (0.42, 0.5, 0.08)}


def _scalar_input(ctx: _NodeContext, i: int, what: str) -> float:
    arr = ctx.const_input(i)
    if arr is None or arr.size != 1:
        raise ctx.fail(f"the {what} must be a constant scalar")
    return arr.reshape(()).item()


def _output_dtype(ctx: _NodeContext) -> np.dtype:
    return DType.from_onnx(int(ctx.attrs.get("output_datatype", 1))).numpy


def _function_body(ctx: _NodeContext):
    """The node converted as the function body its schema defines, the body's attribute references
    bound to the node's attributes (or their defaults)."""
    schema = onnx.defs.get_schema(ctx.node.op_type, ctx.opset, "")
    given = {a.name: a for a in ctx.node.attribute}
    given.update((n, a.default_value) for n, a in schema.attributes.items() if n not in given and a.default_value.type)
    nodes = []
    for body_node in schema.function_body.node:
        node = onnx.NodeProto()
        node.CopyFrom(body_node)
        del node.attribute[:]
        for a in body_node.attribute:
            bound = given.get(a.ref_attr_name, a) if a.ref_attr_name else a
            if a.ref_attr_name and bound is a:
                continue  # an optional attribute the node leaves unset
            node.attribute.append(bound)
            node.attribute[-1].name = a.name
        nodes.append(node)
    fn = schema.function_body
    body = helper.make_graph(nodes, ctx.node.op_type, [helper.make_empty_tensor_value_info(n) for n in fn.input],
                             [helper.make_empty_tensor_value_info(n) for n in fn.output])
    known = [ctx.sym_input(i) for i in range(len(fn.input))]
    bindings = {name: ctx.input(i) if known[i] is None else known[i] for i, name in enumerate(fn.input)}
    return ctx.importer.inline_graph(body, bindings, ctx.node.name or ctx.node.output[0])


@converter(*_WINDOWS)
def _window(ctx: _NodeContext):
    """A periodic window has period `size`, a symmetric one `size - 1`."""
    if ctx.const_input(0) is None:
        return _function_body(ctx)
    size = int(_scalar_input(ctx, 0, "size"))
    if size < 0:
        raise ctx.fail(f"size must be >= 0, got {size}")
    dtype = _output_dtype(ctx)
    _check_size(ctx, size, dtype, "the window")
    period = size if int(ctx.attrs.get("periodic", 1)) else size - 1
    phase = 2 * np.pi * np.arange(size) / max(period, 1)
    w = sum((-1) ** k * a * np.cos(k * phase) for k, a in enumerate(_WINDOWS[ctx.node.op_type]))
    return [_const(ctx, "window", np.asarray(w, dtype))]


def _mel_edges(num_mel_bins: int, dft_length: int, sample_rate: float, low_hz: float, high_hz: float) -> np.ndarray:
    """The spectrogram bin of each triangle's edges, mel-spaced between the edge frequencies (the
    ONNX reference divides the mel range into num_mel_bins + 2 steps, onnxruntime likewise)."""
    low_mel, high_mel = (2595 * np.log10(1 + f / 700) for f in (low_hz, high_hz))
    mels = low_mel + np.arange(num_mel_bins + 2) * (high_mel - low_mel) / (num_mel_bins + 2)
    hertz = 700 * (10 ** (mels / 2595) - 1)
    return ((dft_length + 1) * hertz // sample_rate).astype(np.int64)


@converter("MelWeightMatrix")
def _mel_weight_matrix(ctx: _NodeContext):
    """[dft_length // 2 + 1, num_mel_bins]: column i a triangle rising from edge i to edge i + 1 and
    falling to edge i + 2."""
    if any(known_only_at_run_time(ctx, i) for i in range(5)):
        return mel_weight_matrix_at_run_time(ctx, DType.from_numpy(_output_dtype(ctx)))
    mel_bins, dft_length = int(_scalar_input(ctx, 0, "num_mel_bins")), int(_scalar_input(ctx, 1, "dft_length"))
    rate, low, high = (float(_scalar_input(ctx, i, w)) for i, w in
                       ((2, "sample_rate"), (3, "lower_edge_hertz"), (4, "upper_edge_hertz")))
    if mel_bins < 1 or dft_length < 1 or rate <= 0 or not 0 <= low < high:
        raise ctx.fail(f"needs num_mel_bins, dft_length, sample_rate > 0 and 0 <= lower < upper edge, got "
                       f"{mel_bins}, {dft_length}, {rate}, {low}, {high}")
    bins, dtype = dft_length // 2 + 1, _output_dtype(ctx)
    _check_size(ctx, bins * mel_bins, dtype, "the weight matrix")
    edges = _mel_edges(mel_bins, dft_length, rate, low, high)
    if max(edges[-2], edges[-1] - 1) >= bins:  # the last bin the triangles cover
        raise ctx.fail(f"upper_edge_hertz {high} lies above the Nyquist frequency of sample_rate {rate}")
    out, j = np.zeros((bins, mel_bins)), np.arange(bins)[:, None]
    left, center, right = edges[:-2], edges[1:-1], edges[2:]
    rising = (j - left) / np.maximum(center - left, 1)
    falling = (right - j) / np.maximum(right - center, 1)
    out = np.where((j >= left) & (j <= center), np.where(center > left, rising, j == center), out)
    out = np.where((j >= center) & (j < right), falling, out)
    return [_const(ctx, "weights", out.astype(dtype))]


def _dft_matrix(n: int, channels: int, length: int, bins: int, inverse: bool) -> np.ndarray:
    """[n * channels, 2 * bins] mapping a signal of n (re[, im]) pairs, zero-padded or truncated to
    `length`, to `bins` interleaved (re, im) frequencies: X[k] = sum_m x[m] e^(-+2 pi i k m / length)."""
    m = np.arange(min(n, length))[:, None]
    angle = 2 * np.pi * (np.arange(bins)[None, :] * m % length) / length
    sign = 1 if inverse else -1
    cos, sin = np.cos(angle), sign * np.sin(angle)
    w = np.zeros((n, channels, bins, 2))
    w[:len(m), 0, :, 0], w[:len(m), 0, :, 1] = cos, sin  # the real part of x
    if channels == 2:
        w[:len(m), 1, :, 0], w[:len(m), 1, :, 1] = -sin, cos  # i times the imaginary part
    return w.reshape(n * channels, 2 * bins) / (length if inverse else 1)


def _inverse_onesided_matrix(n: int, length: int) -> np.ndarray:
    """[n * 2, length] mapping the first n (re, im) frequencies of a real signal's spectrum to the
    signal: every bin but DC and the Nyquist bin stands for itself and its conjugate mirror."""
    k = np.arange(min(n, length // 2 + 1))[:, None]
    angle = 2 * np.pi * (k * np.arange(length)[None, :] % length) / length
    weight = np.where((k == 0) | (2 * k == length), 1, 2) / length
    w = np.zeros((n, 2, length))
    w[:len(k), 0], w[:len(k), 1] = weight * np.cos(angle), -weight * np.sin(angle)
    return w.reshape(n * 2, length)


def _check_signal(ctx: _NodeContext, c, onesided: bool, inverse: bool) -> None:
    if c not in (1, 2):
        raise ctx.fail(f"needs a last dim of 1 (real) or 2 (complex), got {c}")
    if onesided and c != (2 if inverse else 1):
        raise ctx.fail("onesided needs a complex input (last dim 2) when inverse, a real one (last dim 1) when not")


def _transform_last(ctx: _NodeContext, x, length: int, onesided: bool, inverse: bool):
    """The DFT of x [..., n, 1 or 2] along n: x viewed as [..., n * c] times the constant matrix,
    viewed back as [..., bins, 2] ([..., length, 1] for the inverse of a one-sided spectrum)."""
    *lead, n, c = ctx.shape(x)
    if not isinstance(n, int):
        raise ctx.fail(f"needs a static signal length, got shape {ctx.shape(x)}")
    _check_signal(ctx, c, onesided, inverse)
    bins, parts = (length, 1) if onesided and inverse else (length // 2 + 1 if onesided else length, 2)
    _check_size(ctx, n * c * parts * bins, _np_dtype(x), "the DFT matrix")
    matrix = (_inverse_onesided_matrix(n, length) if onesided and inverse
              else _dft_matrix(n, c, length, bins, inverse))
    (flat,) = ctx.emit(graph.ReshapeOp, [x], shape=[0] * len(lead) + [n * c])
    (y,) = ctx.emit(graph.MatMulOp, [flat, _const(ctx, "dft", matrix.astype(_np_dtype(x)))])
    return ctx.emit(graph.ReshapeOp, [y], shape=[0] * len(lead) + [bins, parts])


def _dft_axis(ctx: _NodeContext, rank: int) -> int:
    if ctx.opset >= 20:
        axis = -2 if ctx.input(2) is None else int(_scalar_input(ctx, 2, "axis"))
    else:
        axis = int(ctx.attrs.get("axis", 1))
    if not -rank <= axis < rank or axis % rank == rank - 1:  # the last dim holds (re[, im])
        raise ctx.fail(f"axis {axis} is not a signal axis of an input of rank {rank}")
    return axis % rank


@converter("DFT")
def _dft(ctx: _NodeContext):
    """The signal axis is moved next to the complex dim, transformed, and moved back. An axis or
    length known only at run time, or a dynamic signal length, takes run_time_signal.py's form."""
    x = ctx.input(0)
    rank = len(ctx.shape(x))
    onesided, inverse = bool(ctx.attrs.get("onesided", 0)), bool(ctx.attrs.get("inverse", 0))
    run_time = known_only_at_run_time(ctx, 1) or ctx.opset >= 20 and known_only_at_run_time(ctx, 2)
    axis = None if run_time else _dft_axis(ctx, rank)
    if run_time or not isinstance(ctx.shape(x)[axis], int):
        _check_signal(ctx, ctx.shape(x)[-1], onesided, inverse)
        return dft_at_run_time(ctx, onesided, inverse)
    n = ctx.shape(x)[axis]
    if ctx.input(1) is not None:
        length = int(_scalar_input(ctx, 1, "dft_length"))
    else:  # the inverse of a one-sided spectrum of n bins has 2 (n - 1) samples
        length = 2 * (n - 1) if onesided and inverse and isinstance(n, int) else n
    if not isinstance(length, int) or length < 1:
        raise ctx.fail(f"the transform length must be static and >= 1, got {length}")
    perm = [d for d in range(rank - 1) if d != axis] + [axis, rank - 1]
    moved = axis != rank - 2
    if moved:
        (x,) = ctx.emit(nn.TransposeOp, [x], perm=perm)
    (y,) = _transform_last(ctx, x, length, onesided, inverse)
    return ctx.emit(nn.TransposeOp, [y], perm=list(np.argsort(perm))) if moved else [y]


@converter("STFT")
def _stft(ctx: _NodeContext):
    """Frames gathered at constant positions f * frame_step + j, times the window, then one DFT of
    frame_length per frame: [batch, frames, bins, 2]. A frame_step or frame_length known only at run
    time, or a dynamic signal or window length, takes run_time_signal.py's form."""
    x, window = ctx.input(0), ctx.input(2)
    if len(ctx.shape(x)) != 3 or window is not None and len(ctx.shape(window)) != 1:
        raise ctx.fail(f"needs a signal [batch, length, 1 or 2] and a 1-D window, got shapes {ctx.shape(x)} "
                       f"and {None if window is None else ctx.shape(window)}")
    onesided = bool(ctx.attrs.get("onesided", 1))
    dynamic = [ctx.shape(x)[1]] + ([] if window is None else [ctx.shape(window)[0]])
    if any(known_only_at_run_time(ctx, i) for i in (1, 3)) or not all(isinstance(d, int) for d in dynamic):
        _check_signal(ctx, ctx.shape(x)[-1], onesided, inverse=False)
        return stft_at_run_time(ctx, window, onesided,
                                lambda frames, length: _transform_last(ctx, frames, length, onesided, inverse=False)[0])
    samples = ctx.shape(x)[1]
    step = int(_scalar_input(ctx, 1, "frame_step"))
    length = (int(_scalar_input(ctx, 3, "frame_length")) if ctx.input(3) is not None
              else ctx.shape(window)[0] if window is not None else None)
    if length is None or step < 1 or not 1 <= length <= samples:
        raise ctx.fail(f"needs frame_step >= 1 and 1 <= frame_length <= signal length, "
                       f"got {samples}, {step}, {length}")
    if window is not None and ctx.shape(window) != (length,):
        raise ctx.fail(f"the window must have frame_length ({length}) values, got shape {ctx.shape(window)}")
    frames = (samples - length) // step + 1
    _check_size(ctx, frames * length, np.int64, "the frame positions")
    positions = np.arange(frames)[:, None] * step + np.arange(length)[None, :]
    (framed,) = ctx.emit(gt.GatherOp, [x, _const(ctx, "positions", positions)], axis=1)
    if window is not None:
        (w,) = ctx.emit(graph.ReshapeOp, [window], shape=[length, 1])
        (framed,) = ctx.emit(graph.MulOp, [framed, w])
    return _transform_last(ctx, framed, length, onesided, inverse=False)
