"""Reference semantics of the CNN ops (dialects/graph_nn.py): direct numpy loops over kernel taps.

Written from the ONNX operator definitions, independently of the CPU lowerings (no im2col, no
tables shared with the kernels), so the compiled code can be checked against them.
"""
from __future__ import annotations

import itertools

import numpy as np

from pyflame_rt.dialects import graph_nn as nn
from pyflame_rt.dialects.graph_tensor import attr_dims
from pyflame_rt.errors import UnsupportedOperatorError
from pyflame_rt.dialects.reference.evaluator import dim_value, reference


def _tap_slices(tap, dilations, strides, counts, offset=(0,)) -> tuple:
    """The [N, C, ...] slice that tap `tap` reads (or writes) for every window position."""
    offset = offset * len(tap) if len(offset) == 1 else offset
    return (slice(None), slice(None), *(
        slice(o + t * d, o + t * d + s * (n - 1) + 1, s)
        for t, d, s, n, o in zip(tap, dilations, strides, counts, offset)))


def _conv_attrs(op, data: np.ndarray):
    """Spatial rank, pads, strides, dilations and groups of a (transposed) convolution."""
    return data.ndim - 2, op.ints("pads"), op.ints("strides"), op.ints("dilations"), op.groups


def _with_bias(out: np.ndarray, x: list[np.ndarray]) -> np.ndarray:
    return out + x[2].reshape((-1,) + (1,) * (out.ndim - 2)) if len(x) > 2 else out


def channels_first(fn):
    """The NCHW semantics applied to an op in optimize-layout's NHWC layout: data operands (all but a
    conv's weight and bias) and the result are transposed around it."""
    def run(op, x):
        if op.data_layout != "NHWC":
            return fn(op, x)
        weights = (op.weight, op.bias) if isinstance(op, nn.ConvOp) else ()
        x = [v if o in weights else np.moveaxis(v, -1, 1) for o, v in zip(op.operands, x)]
        return np.moveaxis(fn(op, x), 1, -1)
    return run


@reference(nn.ConvOp)
@channels_first
def _conv(op, x):
    data, w = x[0], x[1]
    nsp, pads, strides, dilations, g = _conv_attrs(op, data)
    xp = np.pad(data, [(0, 0), (0, 0)] + [(pads[i], pads[nsp + i]) for i in range(nsp)])
    out_sp = [(xp.shape[2 + i] - dilations[i] * (w.shape[2 + i] - 1) - 1) // strides[i] + 1 for i in range(nsp)]
    mg, cg = w.shape[0] // g, w.shape[1]
    out = np.zeros((data.shape[0], w.shape[0], *out_sp), np.float64)
    for tap in itertools.product(*(range(k) for k in w.shape[2:])):
        window = xp[_tap_slices(tap, dilations, strides, out_sp)]
        for j in range(g):
            out[:, j * mg:(j + 1) * mg] += np.einsum(
                "mc,nc...->nm...", w[j * mg:(j + 1) * mg, :, *tap], window[:, j * cg:(j + 1) * cg])
    out = _with_bias(out, x[:3] if op.bias is not None else x[:2])
    return out + x[-1] if op.residual is not None else out  # fused residual, before the activation


@reference(nn.ConvTransposeOp)
def _conv_transpose(op, x):
    data, w = x[0], x[1]
    nsp, pads, strides, dilations, g = _conv_attrs(op, data)
    cg, mg = w.shape[0] // g, w.shape[1]
    in_sp = data.shape[2:]
    out_sp = [strides[i] * (in_sp[i] - 1) + op.ints("output_padding")[i] + (w.shape[2 + i] - 1) * dilations[i] + 1
              - pads[i] - pads[nsp + i] for i in range(nsp)]
    # a canvas holding every tap's contribution, shifted so that negative begin pads stay inside it
    shift = [max(0, -pads[i]) for i in range(nsp)]
    extent = [max(strides[i] * (in_sp[i] - 1) + (w.shape[2 + i] - 1) * dilations[i] + 1, pads[i] + out_sp[i])
              + shift[i] for i in range(nsp)]
    canvas = np.zeros((data.shape[0], mg * g, *extent), np.float64)
    for tap in itertools.product(*(range(k) for k in w.shape[2:])):
        dst = _tap_slices(tap, dilations, strides, in_sp, shift)
        for j in range(g):
            contrib = np.einsum("cm,nc...->nm...", w[j * cg:(j + 1) * cg, :, *tap], data[:, j * cg:(j + 1) * cg])
            canvas[(dst[0], slice(j * mg, (j + 1) * mg), *dst[2:])] += contrib
    out = canvas[(slice(None), slice(None),
                  *(slice(shift[i] + pads[i], shift[i] + pads[i] + out_sp[i]) for i in range(nsp)))]
    return _with_bias(out, x)


@reference(nn.Col2ImOp)
def _col2im(op, x):
    image, block, strides, dilations, pads = (op.ints(n) for n in ("image_shape", "block_shape", "strides",
                                                                    "dilations", "pads"))
    nsp, counts = len(image), op.block_counts()
    n, c = x[0].shape[0], x[0].shape[1] // int(np.prod(block))
    cols = x[0].astype(np.float64).reshape(n, c, *block, *counts)
    canvas = np.zeros((n, c, *(image[i] + pads[i] + pads[nsp + i] for i in range(nsp))))
    for tap in itertools.product(*(range(k) for k in block)):
        canvas[_tap_slices(tap, dilations, strides, counts)] += cols[(slice(None), slice(None), *tap)]
    return canvas[(slice(None), slice(None), *(slice(pads[i], pads[i] + image[i]) for i in range(nsp)))]


@reference(nn.MaxPoolOp, nn.AveragePoolOp)
@channels_first
def _pool(op, x):
    data = x[0].astype(np.float64)
    nsp = data.ndim - 2
    k, strides, dilations, pads = (op.ints(n) for n in ("kernel_shape", "strides", "dilations", "pads"))
    out_sp = list(nn.channels_first(op.result.type.get_shape(), op.data_layout)[2:])
    # extend the end padding so that every (ceil_mode) window lies inside the padded input
    ends = [max(pads[nsp + i], (out_sp[i] - 1) * strides[i] + (k[i] - 1) * dilations[i] + 1 - data.shape[2 + i]
                - pads[i]) for i in range(nsp)]
    widths = [(0, 0), (0, 0)] + [(pads[i], ends[i]) for i in range(nsp)]
    xp = np.pad(data, widths)
    inside = np.pad(np.ones(data.shape), widths)  # 1 on input elements
    # 1 on input elements and explicit pads (count_include_pad), 0 on the ceil_mode extension
    explicit = np.pad(np.ones([*data.shape[:2], *(data.shape[2 + i] + pads[i] + pads[nsp + i] for i in range(nsp))]),
                      [(0, 0), (0, 0)] + [(0, ends[i] - pads[nsp + i]) for i in range(nsp)])
    is_max = isinstance(op, nn.MaxPoolOp)
    acc = np.full((*data.shape[:2], *out_sp), -np.inf if is_max else 0.0)
    count = np.zeros_like(acc)
    for tap in itertools.product(*(range(n) for n in k)):
        sl = _tap_slices(tap, dilations, strides, out_sp)
        if is_max:
            acc = np.maximum(acc, np.where(inside[sl] > 0, xp[sl], -np.inf))
        else:
            acc += xp[sl]
            count += (explicit if op.count_include_pad.value.data else inside)[sl]
    return acc if is_max else acc / np.maximum(count, 1)


@reference(nn.GlobalAveragePoolOp, nn.GlobalMaxPoolOp)
@channels_first
def _global_pool(op, x):
    axes = tuple(range(2, x[0].ndim))
    fn = np.mean if isinstance(op, nn.GlobalAveragePoolOp) else np.max
    return fn(x[0].astype(np.float64), axis=axes, keepdims=True)


def _per_channel(p: np.ndarray, rank: int) -> np.ndarray:
    return p.astype(np.float64).reshape((-1,) + (1,) * (rank - 2))


@reference(nn.BatchNormOp)
def _batch_norm(op, x):
    data, scale, bias, mean, var = x
    r = data.ndim
    eps = op.epsilon.value.data
    return ((data - _per_channel(mean, r)) / np.sqrt(_per_channel(var, r) + eps) * _per_channel(scale, r)
            + _per_channel(bias, r))


@reference(nn.InstanceNormOp)
def _instance_norm(op, x):
    data = x[0].astype(np.float64)
    axes = tuple(range(2, data.ndim))
    mean, var = data.mean(axis=axes, keepdims=True), data.var(axis=axes, keepdims=True)
    normed = (data - mean) / np.sqrt(var + op.epsilon.value.data)
    return normed * _per_channel(x[1], data.ndim) + _per_channel(x[2], data.ndim)


@reference(nn.LRNOp)
def _lrn(op, x):
    data = x[0].astype(np.float64)
    size = op.size.value.data
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    sq = np.pad(data * data, [(0, 0), (lo, hi)] + [(0, 0)] * (data.ndim - 2))
    square_sum = sum(sq[:, i:i + data.shape[1]] for i in range(size))
    alpha, beta, bias = (getattr(op, n).value.data for n in ("alpha", "beta", "bias"))
    return data / (bias + alpha / size * square_sum) ** beta


@reference(nn.PadOp)
def _pad(op, x):
    pads, rank = [int(p) for p in op.pads.get_values()], x[0].ndim
    widths = [(pads[i], pads[rank + i]) for i in range(rank)]
    mode = op.mode.data
    if mode == "constant":
        return np.pad(x[0], widths, constant_values=np.asarray(op.value.value.data).astype(x[0].dtype))
    return np.pad(x[0], widths, mode=mode)


def _source_coordinate(o: np.ndarray, out: int, size: int, scale: float, mode: str) -> np.ndarray:
    """ONNX Resize coordinate_transformation_mode: where output index o samples the input."""
    if mode == "align_corners":
        return o * (size - 1) / (out - 1) if out > 1 else 0 * o
    if mode == "asymmetric":
        return o / scale
    if mode == "pytorch_half_pixel" and out == 1:
        return 0 * o
    if mode in ("half_pixel", "pytorch_half_pixel"):
        return (o + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        return size / 2 * (1 - out / (scale * size)) + (o + 0.5) / scale - 0.5
    raise UnsupportedOperatorError(f"graph.resize reference: coordinate_transformation_mode {mode}")


_ROUND = {"round_prefer_floor": lambda c: np.ceil(c - 0.5), "round_prefer_ceil": lambda c: np.floor(c + 0.5),
          "floor": np.floor, "ceil": np.ceil}


@reference(nn.ResizeOp)
def _resize(op, x):
    """Separable: one axis at a time, each output element a weighted sum of input elements."""
    out = x[0].astype(np.float64)
    scales = [float(s) for s in op.scales.get_values()]
    if op.run_time_scales is not None:
        for axis, s in zip(op.scale_axes(), x[1].reshape(-1)):
            scales[axis] = float(s)
    sizes = [dim_value(d) for d in attr_dims(op.sizes)] if op.sizes is not None else None
    crops = {}
    if op.roi is not None:
        roi, axes = x[-1].reshape(-1).astype(np.float64), op.scale_axes()
        crops = {a: (roi[k], roi[k + len(axes)]) for k, a in enumerate(axes)}
    inside = np.True_  # outputs sampling inside the crop (tf_crop_and_resize), broadcast per axis
    for axis in range(out.ndim):
        size = out.shape[axis]
        new = int(size * scales[axis]) if sizes is None else sizes[axis]
        if op.sizes is not None and op.run_time_scales is None:
            scales[axis] = new / size if size else 1.0
        if new == size and scales[axis] == 1.0 and axis not in crops:
            continue
        o = np.arange(new, dtype=np.float64)
        if op.roi is not None:
            start, end = crops.get(axis, (0.0, 1.0))
            c = start * (size - 1) + (o * (end - start) * (size - 1) / (new - 1) if new > 1
                                      else 0 * o + (start + end) / 2 * (size - 1))
            shape = [1] * out.ndim
            shape[axis] = new
            inside = inside & ((c >= 0) & (c <= size - 1)).reshape(shape)
        else:
            c = _source_coordinate(o, new, size, scales[axis], op.coordinate_transformation_mode.data)
        weights = np.zeros((new, size))
        if op.mode.data == "cubic":
            a, first = op.cubic_coeff_a.value.data, np.floor(c)
            for k in range(-1, 3):
                d = np.abs(c - (first + k))
                w = np.where(d <= 1, ((a + 2) * d - (a + 3)) * d * d + 1, ((a * d - 5 * a) * d + 8 * a) * d - 4 * a)
                i = (first + k).astype(int)
                if op.exclude_outside.value.data:
                    w = np.where((i >= 0) & (i < size), w, 0)
                np.add.at(weights, (np.arange(new), np.clip(i, 0, size - 1)), w)
            weights /= weights.sum(axis=1, keepdims=True)
        elif op.mode.data == "nearest":
            weights[np.arange(new), np.clip(_ROUND[op.nearest_mode.data](c), 0, size - 1).astype(int)] = 1.0
        else:
            c = np.clip(c, 0, size - 1)
            lo = np.floor(c).astype(int)
            hi = np.minimum(lo + 1, size - 1)
            np.add.at(weights, (np.arange(new), lo), 1.0 - (c - lo))
            np.add.at(weights, (np.arange(new), hi), c - lo)
        out = np.moveaxis(np.tensordot(weights, np.moveaxis(out, axis, 0), axes=1), 0, axis)
    return np.where(inside, out, op.extrapolation_value.value.data)


def _grid_taps(g: np.ndarray, size: int, op) -> list[tuple[np.ndarray, np.ndarray]]:
    """(index, weight) per tap of one axis at normalized coordinates g; a tap outside the input has
    weight 0 under zeros padding (written from the ONNX GridSample definition)."""
    align, mode, padding = bool(op.align_corners.value.data), op.mode.data, op.padding_mode.data
    x = (g + 1) / 2 * (size - 1) if align else ((g + 1) * size - 1) / 2
    if mode == "nearest":
        x = np.rint(x)
    lo, hi = (0.0, size - 1.0) if align else (-0.5, size - 0.5)

    def reflected(v):
        span = hi - lo
        below = v < lo
        dx = np.where(below, lo - v, v - hi)
        n = np.floor(dx / span)
        r = dx - n * span
        odd = n % 2 == 1
        inner = np.where(below, np.where(odd, hi - r, lo + r), np.where(odd, lo + r, hi - r))
        return np.where((v < lo) | (v > hi), inner, v)

    outside = (x < lo) | (x > hi)
    if padding == "border" and mode != "cubic":  # cubic clamps each tap only, as onnxruntime
        x = np.where(outside, np.clip(x, 0, size - 1), x)
    elif padding == "reflection":
        x = reflected(x)
    if mode == "nearest":
        taps = [(np.trunc(x), np.ones_like(x))]
    else:
        x0 = np.floor(x)
        t = x - x0
        if mode == "linear":
            taps = [(x0, 1 - t), (x0 + 1, t)]
        else:
            a = -0.75
            near = lambda d: ((a + 2) * d - (a + 3)) * d * d + 1  # noqa: E731
            far = lambda d: ((a * d - 5 * a) * d + 8 * a) * d - 4 * a  # noqa: E731
            taps = [(x0 - 1, far(t + 1)), (x0, near(t)), (x0 + 1, near(1 - t)), (x0 + 2, far(2 - t))]
    out = []
    for i, w in taps:
        if padding == "zeros":
            w = np.where((i >= 0) & (i < size), w, 0)
        elif padding == "reflection":
            i = np.trunc(reflected(i))
        out.append((np.clip(i, 0, size - 1).astype(int), w))
    return out


@reference(nn.GridSampleOp)
def _grid_sample(op, x):
    data, grid = x[0].astype(np.float64), x[1].astype(np.float64)
    rank = data.ndim - 2
    n_idx = np.arange(data.shape[0]).reshape((-1,) + (1,) * rank)
    axes = [_grid_taps(grid[..., rank - 1 - k], data.shape[2 + k], op) for k in range(rank)]
    out = 0
    for combo in itertools.product(*axes):
        weight = np.prod([w for _, w in combo], axis=0)
        values = data[(n_idx, slice(None), *[i for i, _ in combo])]  # [N, ..., C]: advanced indices first
        out = out + np.moveaxis(values, -1, 1) * weight[:, None]
    return out


@reference(nn.AffineGridOp)
def _affine_grid(op, x):
    theta = x[0].astype(np.float64)
    spatial = [dim_value(d) for d in attr_dims(op.size)[2:]]
    if op.align_corners.value.data:
        axes = [np.linspace(-1, 1, n) if n > 1 else np.ones(n) for n in spatial]  # a single point: 1, as onnxruntime
    else:
        axes = [(2 * np.arange(n) + 1) / n - 1 for n in spatial]
    mesh = np.meshgrid(*axes, indexing="ij")  # per spatial axis, first axis first
    base = np.stack([*mesh[::-1], np.ones(spatial)], axis=-1)  # (x, y[, z], 1)
    return np.einsum("nkj,...j->n...k", theta, base)


@reference(nn.ConcatOp)
def _concat(op, x):
    return np.concatenate(x, axis=op.axis.value.data)


@reference(nn.TransposeOp)
def _transpose(op, x):
    return np.transpose(x[0], [int(p) for p in op.perm.get_values()])


@reference(nn.SqueezeOp, nn.UnsqueezeOp)
def _reshape_axes(op, x):
    return x[0].reshape(op.infer_shapes([x[0].shape])[0])


@reference(nn.SliceOp)
def _slice(op, x):
    out = x[0]
    for axis, (first, count, step) in op.per_axis(x[0].shape, dim_value).items():
        out = np.take(out, first + step * np.arange(count), axis=axis)
    return out


@reference(nn.TileOp)
def _tile(op, x):
    return np.tile(x[0], [dim_value(r) for r in attr_dims(op.repeats)])
