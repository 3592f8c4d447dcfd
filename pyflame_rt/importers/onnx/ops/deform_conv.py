"""DeformConv (2-D) as a bilinear-sampling im2col and a GEMM: GridSample gathers every kernel tap of
every output position at its offset position (zeros outside the image, as DeformConv's sampling),
the mask scales the samples, and one batched MatMul per group applies the weights."""
from __future__ import annotations

import numpy as np

from pyflame_rt.dialects import graph, graph_nn as nn, graph_tensor as gt
from pyflame_rt.dialects.graph_nn import window_out
from pyflame_rt.errors import ShapeMismatchError
from pyflame_rt.importers.onnx.converters import _NodeContext, converter
from pyflame_rt.importers.onnx.ops.composite import _check_size, _const, _np_dtype


def _window_attrs(ctx: _NodeContext) -> tuple[list[int], list[int], list[int]]:
    """strides, dilations and pads (begin h, begin w, end h, end w), with their defaults."""
    return tuple(list(ctx.attrs.get(a, d)) for a, d in
                 (("strides", [1, 1]), ("dilations", [1, 1]), ("pads", [0, 0, 0, 0])))


def _tap_positions(kernel, strides, dilations, pads, out) -> np.ndarray:
    """[KK, 2, OH, OW]: the (x, y) pixel each tap of each output position reads before its offset."""
    ys = (np.arange(kernel[0])[:, None, None, None] * dilations[0] - pads[0]
          + np.arange(out[0])[None, None, :, None] * strides[0])
    xs = (np.arange(kernel[1])[None, :, None, None] * dilations[1] - pads[1]
          + np.arange(out[1])[None, None, None, :] * strides[1])
    ys, xs = np.broadcast_arrays(ys, xs)
    return np.stack([xs, ys], axis=2).reshape(kernel[0] * kernel[1], 2, *out)


def _sampling_grid(ctx: _NodeContext, offset, image, kernel, out, offset_groups: int):
    """[N * offset groups, KK * OH, OW, 2]: GridSample's normalized (x, y) of every sample
    (align_corners off: pixel p is at (2p + 1) / size - 1)."""
    dt = _np_dtype(ctx.input(0))
    taps = kernel[0] * kernel[1]
    (off,) = ctx.emit(graph.ReshapeOp, [offset], shape=[0, offset_groups, taps, 2, *out])
    (off,) = ctx.emit(gt.GatherOp, [off, _const(ctx, "xy", np.array([1, 0]))], axis=3)  # (dy, dx) -> (dx, dy)
    strides, dilations, pads = _window_attrs(ctx)
    _check_size(ctx, taps * 2 * out[0] * out[1], dt, "the tap positions")
    base = _tap_positions(kernel, strides, dilations, pads, out).astype(dt)
    (pos,) = ctx.emit(graph.AddOp, [off, _const(ctx, "taps", base)])
    size = np.array([image[1], image[0]], np.float64).reshape(2, 1, 1)
    (pos,) = ctx.emit(graph.MulOp, [pos, _const(ctx, "scale", (2 / size).astype(dt))])
    (pos,) = ctx.emit(graph.AddOp, [pos, _const(ctx, "shift", (1 / size - 1).astype(dt))])
    (grid,) = ctx.emit(nn.TransposeOp, [pos], perm=[0, 1, 2, 4, 5, 3])
    return ctx.emit(graph.ReshapeOp, [grid], shape=[-1, taps * out[0], out[1], 2])


def _check_offset_and_mask(ctx: _NodeContext, image, kernel, offset_groups: int) -> None:
    """The offsets and the mask have one (dy, dx) pair / one value per offset group, tap and output
    position of the convolution's geometry."""
    strides, dilations, pads = _window_attrs(ctx)
    if list(ctx.attrs.get("kernel_shape", kernel)) != list(kernel):
        raise ctx.fail(f"kernel_shape {list(ctx.attrs['kernel_shape'])} differs from the weight's {list(kernel)}")
    out = [window_out(image[i], kernel[i], strides[i], dilations[i], pads[i] + pads[2 + i]) for i in range(2)]
    taps = kernel[0] * kernel[1]
    for i, what, per_tap in ((2, "offset", 2), (4, "mask", 1)):
        v = ctx.input(i)
        if v is not None and tuple(ctx.shape(v)[1:]) != (offset_groups * taps * per_tap, *out):
            raise ShapeMismatchError(f"DeformConv node '{ctx.node.name or ctx.node.output[0]}': the {what} must "
                                     f"have shape [N, {offset_groups * taps * per_tap}, {out[0]}, {out[1]}], "
                                     f"got {list(map(str, ctx.shape(v)))}")


@converter("DeformConv")
def _deform_conv(ctx: _NodeContext):
    x, w, offset = ctx.input(0), ctx.input(1), ctx.input(2)
    bias, mask = ctx.input(3), ctx.input(4)
    (_, c, *image), (m, cg, *kernel), (*_, oh, ow) = ctx.shape(x), ctx.shape(w), ctx.shape(offset)
    groups, offset_groups = int(ctx.attrs.get("group", 1)), int(ctx.attrs.get("offset_group", 1))
    if len(image) != 2 or not all(isinstance(d, int) for d in (c, *image, m, cg, *kernel, oh, ow)):
        raise ctx.fail("needs a 2-D image and static channel, spatial, weight and offset dims")
    if c != cg * groups or m % groups or c % offset_groups:
        raise ctx.fail(f"{c} channels do not split into {groups} groups of weight channels {cg} and "
                       f"{offset_groups} offset groups, or {m} outputs into {groups} groups")
    taps, out = kernel[0] * kernel[1], [oh, ow]
    _check_offset_and_mask(ctx, image, kernel, offset_groups)
    (grid,) = _sampling_grid(ctx, offset, image, kernel, out, offset_groups)
    (xs,) = ctx.emit(graph.ReshapeOp, [x], shape=[-1, c // offset_groups, *image])
    (cols,) = ctx.emit(nn.GridSampleOp, [xs, grid], mode="linear", padding_mode="zeros", align_corners=False)
    if mask is not None:  # [N * G, C / G, KK * OH, OW] as [N, G, C / G, KK, OH, OW]
        (cols,) = ctx.emit(graph.ReshapeOp, [cols], shape=[-1, offset_groups, c // offset_groups, taps, oh, ow])
        (mask,) = ctx.emit(graph.ReshapeOp, [mask], shape=[0, offset_groups, 1, taps, oh, ow])
        (cols,) = ctx.emit(graph.MulOp, [cols, mask])
    (cols,) = ctx.emit(graph.ReshapeOp, [cols], shape=[-1, groups, cg * taps, oh * ow])
    (wg,) = ctx.emit(graph.ReshapeOp, [w], shape=[groups, m // groups, cg * taps])
    (y,) = ctx.emit(graph.MatMulOp, [wg, cols])
    (y,) = ctx.emit(graph.ReshapeOp, [y], shape=[-1, m, oh, ow])
    if bias is None:
        return [y]
    (b,) = ctx.emit(graph.ReshapeOp, [bias], shape=[m, 1, 1])
    return ctx.emit(graph.AddOp, [y, b])
