"""Converters for CNN ops: Conv/ConvTranspose/Col2Im, pools, normalizations, Pad, data movement (Resize: sampling.py).

Opset differences are removed here: attributes that became inputs (Pad pads,
Split split, Squeeze/Unsqueeze axes, Slice starts/ends) become properties where they
are constants, Slice starts / ends and Tile repeats may also be symbolic dims computed by Shape
arithmetic; Slice / Split / Pad / CenterCropPad arguments known only at run time take
run_time_slices' path. auto_pad is resolved to explicit pads.
"""
from __future__ import annotations

import numpy as np

from pyflame_rt.dialects import graph, graph_nn as nn, graph_pool_indices as pi
from pyflame_rt.dialects.assumptions import require_equal
from pyflame_rt.errors import ShapeMismatchError
from pyflame_rt.importers.onnx.converters import _NodeContext, converter
from pyflame_rt.importers.onnx.run_time_shapes import ShapeArithmetic, known_only_at_run_time
from pyflame_rt.importers.onnx.ops.run_time_col2im import col2im_at_run_time
from pyflame_rt.importers.onnx.ops.run_time_slices import (
    center_crop_pad_at_run_time, pad_at_run_time, slice_at_run_time, split_at_run_time, split_evenly_at_run_time,
    static_axes)


def _const_ints(ctx: _NodeContext, i: int, what: str) -> list[int] | None:
    """An optional constant integer input (None when absent)."""
    if ctx.input(i) is None:
        return None
    v = ctx.const_input(i)
    if v is None:
        raise ctx.fail(f"{what} must be a constant")
    return [int(x) for x in np.asarray(v).ravel()]


def _spatial(ctx: _NodeContext, x_shape, kernel: list[int]) -> tuple[list[int], list[int], list[int]]:
    """strides, dilations and explicit pads (auto_pad resolved) of a windowed op."""
    n = len(kernel)
    strides = list(ctx.attrs.get("strides", [1] * n))
    dilations = list(ctx.attrs.get("dilations", [1] * n))
    auto_pad = ctx.attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("NOTSET", ""):
        pads = list(ctx.attrs.get("pads", [0] * 2 * n))
    elif auto_pad == "VALID":
        pads = [0] * 2 * n
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for i in range(n):
            size = x_shape[2 + i]
            if not isinstance(size, int):
                raise ctx.fail("auto_pad SAME needs static spatial dims")
            out = -(-size // strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size)
            small = total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else total - small)
            end.append(total - begin[-1])
        pads = begin + end
    else:
        raise ctx.fail(f"auto_pad {auto_pad} is not supported")
    return strides, dilations, pads


@converter("Conv")
def _conv(ctx: _NodeContext):
    w_shape = ctx.shape(ctx.input(1))
    kernel = list(ctx.attrs.get("kernel_shape", w_shape[2:]))
    if kernel != list(w_shape[2:]):
        raise ctx.fail(f"kernel_shape {kernel} differs from the weight's {list(w_shape[2:])}")
    strides, dilations, pads = _spatial(ctx, ctx.shape(ctx.input(0)), kernel)
    return ctx.emit(nn.ConvOp, [ctx.input(0), ctx.input(1), ctx.input(2)], strides=strides,
                    dilations=dilations, pads=pads, group=int(ctx.attrs.get("group", 1)))


@converter("ConvTranspose")
def _conv_transpose(ctx: _NodeContext):
    x_shape, w_shape = ctx.shape(ctx.input(0)), ctx.shape(ctx.input(1))
    n = len(w_shape) - 2
    kernel = list(w_shape[2:])
    strides = list(ctx.attrs.get("strides", [1] * n))
    dilations = list(ctx.attrs.get("dilations", [1] * n))
    out_pad = list(ctx.attrs.get("output_padding", [0] * n))
    auto_pad = ctx.attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    pads = list(ctx.attrs.get("pads", [0] * 2 * n))
    target = ctx.attrs.get("output_shape")
    if target is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if target is None:
            target = [x_shape[2 + i] * strides[i] for i in range(n)]
        target = list(target)[-n:]
        pads = [0] * 2 * n
        for i in range(n):
            full = strides[i] * (x_shape[2 + i] - 1) + out_pad[i] + (kernel[i] - 1) * dilations[i] + 1
            total = full - target[i]  # negative: output_shape is larger, the pads extend the output
            if total <= -strides[i]:
                raise ctx.fail(f"output_shape {target} exceeds the full output by a stride or more")
            # as onnx's reference and ORT: SAME_UPPER puts an odd pad's extra element at the end
            pads[i] = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            pads[n + i] = total - pads[i]
    elif auto_pad == "VALID":
        pads = [0] * 2 * n
    return ctx.emit(nn.ConvTransposeOp, [ctx.input(0), ctx.input(1), ctx.input(2)], strides=strides,
                    dilations=dilations, pads=pads, output_padding=out_pad,
                    group=int(ctx.attrs.get("group", 1)))


@converter("Col2Im")
def _col2im(ctx: _NodeContext):
    """graph.col2im, or with image_shape / block_shape known only at run time a scatter-add at
    computed positions (run_time_col2im.py)."""
    image, block = ctx.const_input(1), ctx.const_input(2)
    n = int(np.prod(ctx.shape(ctx.input(1))))
    geometry = dict(strides=list(ctx.attrs.get("strides", [1] * n)),
                    dilations=list(ctx.attrs.get("dilations", [1] * n)), pads=list(ctx.attrs.get("pads", [0] * 2 * n)))
    if image is None or block is None:
        return col2im_at_run_time(ctx, **geometry)
    return ctx.emit(nn.Col2ImOp, [ctx.input(0)], image_shape=[int(v) for v in image],
                    block_shape=[int(v) for v in block], **geometry)


def _pool_props(ctx: _NodeContext) -> dict:
    kernel = list(ctx.attrs["kernel_shape"])
    strides, dilations, pads = _spatial(ctx, ctx.shape(ctx.input(0)), kernel)
    return dict(kernel_shape=kernel, strides=strides, dilations=dilations, pads=pads,
                ceil_mode=bool(ctx.attrs.get("ceil_mode", 0)))


def _storage_order(order: int) -> str:
    """ONNX's storage_order as the op's; a value it does not define is refused by the op."""
    return pi.STORAGE_ORDERS.get(order, str(order))


@converter("MaxPool")
def _max_pool(ctx: _NodeContext):
    """The argmax-tracking variant only when the Indices output is used (storage_order only shapes it)."""
    if len(ctx.node.output) > 1 and ctx.node.output[1]:
        return ctx.emit(pi.MaxPoolWithIndicesOp, [ctx.input(0)], **_pool_props(ctx),
                        storage_order=_storage_order(int(ctx.attrs.get("storage_order", 0))))
    return ctx.emit(nn.MaxPoolOp, [ctx.input(0)], **_pool_props(ctx))


@converter("AveragePool")
def _average_pool(ctx: _NodeContext):
    return ctx.emit(nn.AveragePoolOp, [ctx.input(0)], **_pool_props(ctx),
                    count_include_pad=bool(ctx.attrs.get("count_include_pad", 0)))


@converter("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(ctx: _NodeContext):
    op = nn.GlobalAveragePoolOp if ctx.node.op_type == "GlobalAveragePool" else nn.GlobalMaxPoolOp
    return ctx.emit(op, [ctx.input(0)])


@converter("BatchNormalization")
def _batch_norm(ctx: _NodeContext):
    if ctx.attrs.get("training_mode", 0) or any(ctx.node.output[1:]):
        raise ctx.fail("only the inference form (one output, running statistics) is supported")
    return ctx.emit(nn.BatchNormOp, [ctx.input(i) for i in range(5)],
                    epsilon=float(ctx.attrs.get("epsilon", 1e-5)))


@converter("InstanceNormalization")
def _instance_norm(ctx: _NodeContext):
    return ctx.emit(nn.InstanceNormOp, [ctx.input(0), ctx.input(1), ctx.input(2)],
                    epsilon=float(ctx.attrs.get("epsilon", 1e-5)))


@converter("LRN")
def _lrn(ctx: _NodeContext):
    return ctx.emit(nn.LRNOp, [ctx.input(0)], size=int(ctx.attrs["size"]),
                    alpha=float(ctx.attrs.get("alpha", 1e-4)), beta=float(ctx.attrs.get("beta", 0.75)),
                    bias=float(ctx.attrs.get("bias", 1.0)))


@converter("Pad")
def _pad(ctx: _NodeContext):
    x = ctx.input(0)
    rank = len(ctx.shape(x))
    mode = ctx.attrs.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if ctx.opset < 11:
        pads, value = list(ctx.attrs["pads"]), float(ctx.attrs.get("value", 0.0))
    else:
        if any(ctx.input(i) is not None and ctx.const_input(i) is None for i in (1, 2, 3)):
            return pad_at_run_time(ctx, mode)
        pads = _const_ints(ctx, 1, "pads")
        v = ctx.const_input(2) if ctx.input(2) is not None else np.zeros(1)
        value = float(np.asarray(v).ravel()[0]) if np.asarray(v).size else 0.0
        axes = _const_ints(ctx, 3, "axes")
        if axes is not None:
            full = [0] * 2 * rank
            for j, a in enumerate(axes):
                a %= rank
                full[a], full[rank + a] = pads[j], pads[len(axes) + j]
            pads = full
    return _pad_static(ctx, x, pads, mode, value)


def _pad_static(ctx: _NodeContext, x, pads: list[int], mode: str, value: float):
    """Pad by constant pads (begin..., end...); negative ones crop."""
    rank = len(ctx.shape(x))
    if len(pads) != 2 * rank:
        raise ctx.fail(f"expected {2 * rank} pads, got {len(pads)}")
    if min(pads) < 0:  # negative pads crop: slice first
        shape = ctx.shape(x)
        axes = [i for i in range(rank) if pads[i] < 0 or pads[rank + i] < 0]
        x = ctx.emit(nn.SliceOp, [x], starts=[max(0, -pads[a]) for a in axes],
                     ends=[shape[a] - max(0, -pads[rank + a]) for a in axes], axes=axes,
                     steps=[1] * len(axes))[0]
        pads = [max(0, p) for p in pads]
    return ctx.emit(nn.PadOp, [x], pads=pads, mode=mode, value=value)


@converter("CenterCropPad")
def _center_crop_pad(ctx: _NodeContext):
    """Crop or pad (with zeros) each of `axes` to the target dim, centered: (target - dim) // 2 padded
    before, or (dim - target) // 2 cropped before."""
    x = ctx.input(0)
    shape = ctx.shape(x)
    rank = len(shape)
    axes = static_axes(ctx, [int(a) for a in ctx.attrs.get("axes", range(rank))], rank)
    target = ctx.const_input(1)
    if target is None or not all(isinstance(shape[a], int) for a in axes):
        return center_crop_pad_at_run_time(ctx, axes)
    if target.size != len(axes):
        raise ctx.fail(f"{target.size} target dims for {len(axes)} axes")
    pads = [0] * 2 * rank
    for a, t in zip(axes, target.ravel()):
        grow = int(t) - shape[a]
        pads[a] = grow // 2 if grow > 0 else -(-grow // 2)
        pads[rank + a] = grow - pads[a]
    return _pad_static(ctx, x, pads, "constant", 0.0)


@converter("Concat")
def _concat(ctx: _NodeContext):
    ins = [ctx.input(i) for i in range(len(ctx.node.input))]
    return ctx.emit(nn.ConcatOp, [v for v in ins if v is not None], axis=int(ctx.attrs["axis"]))


@converter("Split")
def _split(ctx: _NodeContext):
    """Split becomes one graph.slice per output."""
    x = ctx.input(0)
    shape = ctx.shape(x)
    axis = int(ctx.attrs.get("axis", 0)) % len(shape)
    if ctx.opset >= 13 and ctx.input(1) is not None and ctx.const_input(1) is None:
        return split_at_run_time(ctx, axis)
    split = list(ctx.attrs["split"]) if ctx.opset < 13 and "split" in ctx.attrs else _const_ints(ctx, 1, "split")
    n_out = len(ctx.node.output)
    if split is None:
        size = shape[axis]
        n = int(ctx.attrs.get("num_outputs", n_out))
        if not isinstance(size, int):
            return split_evenly_at_run_time(ctx, axis, n)
        chunk = -(-size // n)
        split = [min(chunk, size - i * chunk) for i in range(n)]
    if len(split) != n_out:
        raise ctx.fail(f"{len(split)} split sizes for {n_out} outputs")
    require_equal(sum(split), shape[axis], f"Split sizes {split} do not add up to axis {axis}")
    outs, start = [], 0
    for s in split:
        outs += ctx.emit(nn.SliceOp, [x], starts=[start], ends=[start + s], axes=[axis], steps=[1])
        start += s
    return outs


@converter("Transpose")
def _transpose(ctx: _NodeContext):
    rank = len(ctx.shape(ctx.input(0)))
    perm = list(ctx.attrs.get("perm", reversed(range(rank))))
    return ctx.emit(nn.TransposeOp, [ctx.input(0)], perm=perm)


def _squeeze_run_time_axes(ctx: _NodeContext):
    """Squeeze / Unsqueeze axes known only at run time: a reshape to the dims derived from them (a
    squeezed dim must be 1)."""
    sa = ShapeArithmetic(ctx)
    x = ctx.input(0)
    shape = ctx.shape(x)
    axes = sa.operand(1)
    n_axes = sa.size(axes)
    if ctx.node.op_type == "Squeeze":
        if n_axes > len(shape):
            raise ShapeMismatchError(f"{n_axes} squeeze axes for a tensor of rank {len(shape)}")
        counts = sa.axis_counts(axes, len(shape))
        dims = sa.dims(shape)
        ones = sa.eq(sa.reduce("prod", sa.where(sa.lt(0, counts), dims, 1)), 1)
        valid = sa.both(sa.axes_valid(counts, n_axes), ones)
        why = "an axis is out of range or repeated, or a squeezed dim is not 1"
        out = sa.unselected(dims, counts, len(shape) - n_axes) if len(shape) > n_axes else sa.const([])
    else:
        counts = sa.axis_counts(axes, len(shape) + n_axes)
        valid = sa.axes_valid(counts, n_axes)
        why = "an axis is out of range or repeated"
        out = sa.spread(sa.dims(shape), counts) if shape else sa.const([1] * n_axes)
    return ctx.emit(graph.ReshapeOp, [x], shape=sa.bind(out, "axes", valid, why))


@converter("Squeeze", "Unsqueeze")
def _squeeze(ctx: _NodeContext):
    if ctx.opset >= 13 and known_only_at_run_time(ctx, 1):
        return _squeeze_run_time_axes(ctx)
    axes = list(ctx.attrs.get("axes", [])) if ctx.opset < 13 else (_const_ints(ctx, 1, "axes") or [])
    op = nn.SqueezeOp if ctx.node.op_type == "Squeeze" else nn.UnsqueezeOp
    return ctx.emit(op, [ctx.input(0)], axes=axes)


@converter("Slice")
def _slice(ctx: _NodeContext):
    rank = len(ctx.shape(ctx.input(0)))
    if ctx.opset < 10:
        starts, ends = list(ctx.attrs["starts"]), list(ctx.attrs["ends"])
        axes, steps = list(ctx.attrs.get("axes", range(len(starts)))), [1] * len(starts)
    else:
        if any(ctx.sym_input(i) is None for i in (1, 2)) or \
                any(ctx.input(i) is not None and ctx.const_input(i) is None for i in (3, 4)):
            axes = ctx.const_input(3)
            return slice_at_run_time(ctx, None if axes is None else [int(a) for a in axes.ravel()])
        starts, ends = ctx.known_dims(1, "starts"), ctx.known_dims(2, "ends")
        axes = _const_ints(ctx, 3, "axes") or list(range(len(starts)))
        steps = _const_ints(ctx, 4, "steps") or [1] * len(starts)
    clamp = nn.TO_THE_END
    ends = [max(min(e, clamp), -clamp) if isinstance(e, int) else e for e in ends]
    starts = [max(min(s, clamp), -clamp) if isinstance(s, int) else s for s in starts]
    return ctx.emit(nn.SliceOp, [ctx.input(0)], starts=starts, ends=ends,
                    axes=[a % rank for a in axes], steps=steps)


@converter("Tile")
def _tile(ctx: _NodeContext):
    return ctx.emit(nn.TileOp, [ctx.input(0)], repeats=ctx.known_dims(1, "repeats", run_time=True))
