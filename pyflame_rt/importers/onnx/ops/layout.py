"""DepthToSpace / SpaceToDepth, imported as reshape -> transpose -> reshape (the transpose is the
data movement, run by the strided copy kernel; the reshapes are views)."""
from __future__ import annotations

from pyflame_rt.dialects import graph, graph_nn
from pyflame_rt.importers.onnx.converters import _NodeContext, converter


def _static_chw(ctx: _NodeContext, b: int) -> tuple[int, int, int]:
    shape = ctx.shape(ctx.input(0))
    if len(shape) != 4 or not all(isinstance(d, int) for d in shape[1:]):
        raise ctx.fail(f"needs a 4-D input with static C, H, W, got {[str(d) for d in shape]}")
    if b < 1:
        raise ctx.fail(f"blocksize must be positive, got {b}")
    return shape[1], shape[2], shape[3]


def _mode(ctx: _NodeContext) -> str:
    mode = ctx.attrs.get("mode", b"DCR")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in ("DCR", "CRD"):
        raise ctx.fail(f"unknown mode '{mode}'")
    return mode


def _regroup(ctx: _NodeContext, split: list[int], perm: list[int], merged: list[int]):
    """x -> reshape(split) -> transpose(perm) -> reshape(merged); dim 0 (the batch) is copied (0)."""
    (v,) = ctx.emit(graph.ReshapeOp, [ctx.input(0)], shape=[0, *split])
    (v,) = ctx.emit(graph_nn.TransposeOp, [v], perm=perm)
    return ctx.emit(graph.ReshapeOp, [v], shape=[0, *merged])


@converter("DepthToSpace")
def _depth_to_space(ctx: _NodeContext):
    b = int(ctx.attrs["blocksize"])
    c, h, w = _static_chw(ctx, b)
    if c % (b * b):
        raise ctx.fail(f"channels {c} are not divisible by blocksize^2 = {b * b}")
    if _mode(ctx) == "DCR":  # depth is (row offset, column offset, channel)
        return _regroup(ctx, [b, b, c // (b * b), h, w], [0, 3, 4, 1, 5, 2], [c // (b * b), h * b, w * b])
    # CRD: depth is (channel, row offset, column offset)
    return _regroup(ctx, [c // (b * b), b, b, h, w], [0, 1, 4, 2, 5, 3], [c // (b * b), h * b, w * b])


@converter("SpaceToDepth", newer_attributes=("mode",))
def _space_to_depth(ctx: _NodeContext):
    """`mode` (added after opset 21; DCR before): the depth order of the output, as in DepthToSpace."""
    b = int(ctx.attrs["blocksize"])
    c, h, w = _static_chw(ctx, b)
    if h % b or w % b:
        raise ctx.fail(f"spatial dims {h}x{w} are not divisible by blocksize {b}")
    perm = [0, 3, 5, 1, 2, 4] if _mode(ctx) == "DCR" else [0, 1, 3, 5, 2, 4]
    return _regroup(ctx, [c, h // b, b, w // b, b], perm, [c * b * b, h // b, w // b])
