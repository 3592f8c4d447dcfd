"""Converters for the resampling ops: Resize / Upsample, GridSample, AffineGrid.

Resize sizes may be constants, Shape arithmetic over the input dims, or a graph input whose
elements become dims bound at run time. Scales that are not constants (a graph input or computed)
give output dims floor(in * scale) computed by graph ops and bound at run time (`graph.bind_dims`);
the op keeps the scales tensor, whose values the coordinate transform uses. A
keep_aspect_ratio_policy's one scale, and the sizes it gives, are computed the same way. With
antialias, linear and cubic Resize are antialias.py's Gathers and weighted sums.
"""
from __future__ import annotations

import numpy as np
from xdsl.ir import SSAValue

from pyflame_rt.dialects import graph, graph_math as gm, graph_nn as nn, graph_reduce as gr, graph_tensor as gt
from pyflame_rt.dialects.symbolic import Dim, SymDim
from pyflame_rt.dtype import DType
from pyflame_rt.importers.onnx.converters import _NodeContext, converter
from pyflame_rt.importers.onnx.ops.antialias import antialiased_resize, check_scale


def _attr_str(ctx: _NodeContext, name: str, default: str) -> str:
    v = ctx.attrs.get(name, default)
    return v.decode() if isinstance(v, bytes) else v


def _float_dims(ctx: _NodeContext, dims: list[Dim]) -> SSAValue:
    """The dims as a float32 tensor computed at run time."""
    values = gt.DimValuesOp(dims, [len(dims)])
    ctx.importer.builder.insert(values)
    ctx.importer.shapes[values.result] = (len(dims),)
    return ctx.emit(gm.CastOp, [values.result], to="float32")[0]


def _bound_sizes(ctx: _NodeContext, sizes: SSAValue) -> list[Dim]:
    """floor(sizes) (a float32 tensor the model computes) bound as new dims by the run (a negative or
    non-finite size fails the binding's check before any kernel reads it)."""
    importer = ctx.importer
    ints = ctx.emit(gm.CastOp, [ctx.emit(gm.FloorOp, [sizes])[0]], to="int64")[0]
    names = [importer.new_dim(f"{ctx.node.output[0]}_{k}") for k in range(importer.shapes[ints][0])]
    bind = gt.BindDimsOp(ints, names)
    importer.builder.insert(bind)
    importer.shapes[bind.result] = importer.shapes[ints]
    return [SymDim.of(n) for n in names]


def _kept_scale(sizes: np.ndarray, dims: list[int], policy: str) -> float:
    ratio = np.asarray(sizes, np.float64).reshape(-1) / np.array(dims, np.float64)
    return float(ratio.min() if policy == "not_larger" else ratio.max())


def _aspect_kept(ctx: _NodeContext, dims: list[Dim], sizes_in: int, policy: str) -> tuple[SSAValue, list[Dim]]:
    """keep_aspect_ratio_policy: the one scale min (not_larger) or max (not_smaller) of sizes / dims,
    as a tensor of one element per axis, and the dims it gives, floor(dim * scale + 0.5) (computed
    here when sizes and dims are known, else by graph ops and bound at run time)."""
    name = ctx.node.output[0]
    known = ctx.const_input(sizes_in)
    if known is not None and all(isinstance(d, int) for d in dims):
        scale = _kept_scale(known, dims, policy)
        scales = ctx.importer.add_constant(f"{name}_scales", np.full(len(dims), scale, np.float32))
        return scales, [int(scale * d + 0.5) for d in dims]
    in_f = _float_dims(ctx, dims)
    ratio = ctx.emit(graph.DivOp, [ctx.emit(gm.CastOp, [ctx.input(sizes_in)], to="float32")[0], in_f])[0]
    scale = ctx.emit(gr.ReduceOp, [ratio], kind="min" if policy == "not_larger" else "max", axes=[0])[0]
    ones = ctx.importer.add_constant(f"{name}_ones", np.ones(len(dims), np.float32))
    scales = ctx.emit(graph.MulOp, [scale, ones])[0]
    half = ctx.importer.add_constant(f"{name}_half", np.array([0.5], np.float32))
    rounded = ctx.emit(graph.AddOp, [ctx.emit(graph.MulOp, [in_f, scales])[0], half])[0]
    return scales, _bound_sizes(ctx, rounded)


def _crop_and_resize(ctx: _NodeContext, x: SSAValue, axes: list[int], sizes_in: int | None, props: dict):
    """tf_crop_and_resize: the roi (starts then ends of the axes, a constant or given at run time)
    crops, sizes set the output."""
    roi = ctx.input(1)
    if roi is None or ctx.shape(roi) != (2 * len(axes),) or graph.dtype_of(roi.type) is not DType.FLOAT32:
        raise ctx.fail(f"tf_crop_and_resize needs a float32 roi of {2 * len(axes)} elements")
    if sizes_in is None or ctx.input(sizes_in) is None or ctx.shape(ctx.input(sizes_in)) != (len(axes),):
        raise ctx.fail(f"tf_crop_and_resize needs sizes of {len(axes)} elements (scales are not supported)")
    shape = list(ctx.shape(x))
    for a, d in zip(axes, ctx.known_dims(sizes_in, "sizes", run_time=True)):
        shape[a] = d
    return ctx.emit(nn.ResizeOp, [x, None, roi], scales=[1.0] * len(shape), sizes=shape, axes=axes,
                    extrapolation_value=float(ctx.attrs.get("extrapolation_value", 0.0)), **props)


def _antialias_axes(ctx: _NodeContext, x: SSAValue, axes: list[int], scales_in: int, sizes_in: int, policy: str):
    """(axis, output dim, scale: a float, or float32 [1] when known only at run time) of each axis
    Resize changes (an axis of a known scale 1 keeps its size: left out)."""
    name, dims = ctx.node.output[0], [ctx.shape(x)[a] for a in axes]

    def each(scales: SSAValue, outs: list[Dim]):
        return [(a, out, ctx.emit(gt.GatherOp, [scales, ctx.importer.add_constant(f"{name}_k", np.array([k]))])[0])
                for k, (a, out) in enumerate(zip(axes, outs))]

    sizes = ctx.input(sizes_in)
    if sizes is not None and ctx.shape(sizes) != (0,):
        if ctx.shape(sizes) != (len(axes),):
            raise ctx.fail(f"sizes of shape {ctx.shape(sizes)} for {len(axes)} axes")
        known = ctx.const_input(sizes_in)
        if known is not None and all(isinstance(d, int) for d in dims):
            if policy != "stretch":
                scale = _kept_scale(known, dims, policy)
                return [(a, int(scale * d + 0.5), scale) for a, d in zip(axes, dims) if scale != 1]
            return [(a, int(o), int(o) / d) for a, o, d in zip(axes, known.ravel(), dims) if o != d]
        if policy != "stretch":
            return each(*_aspect_kept(ctx, dims, sizes_in, policy))
        outs = ctx.known_dims(sizes_in, "sizes", run_time=True)
        return each(ctx.emit(graph.DivOp, [_float_dims(ctx, outs), _float_dims(ctx, dims)])[0], outs)
    scales = ctx.input(scales_in)
    if scales is None or ctx.shape(scales) != (len(axes),) or graph.dtype_of(scales.type) is not DType.FLOAT32:
        raise ctx.fail(f"needs float32 scales or int64 sizes of {len(axes)} elements")
    known = ctx.const_input(scales_in)
    if known is None:
        return each(scales, _bound_sizes(ctx, ctx.emit(graph.MulOp, [_float_dims(ctx, dims), scales])[0]))
    resized = []
    for a, d, s in zip(axes, dims, np.asarray(known, np.float32).ravel()):
        check_scale(ctx, float(s))
        if s != 1:
            (out,) = [int(d * float(s))] if isinstance(d, int) else _bound_sizes(ctx, ctx.emit(graph.MulOp, [
                _float_dims(ctx, [d]), ctx.importer.add_constant(f"{name}_scale", np.array([s], np.float32))])[0])
            resized.append((a, out, float(s)))
    return resized


@converter("Resize", "Upsample")
def _resize(ctx: _NodeContext):
    x = ctx.input(0)
    shape = ctx.shape(x)
    rank = len(shape)
    mode = _attr_str(ctx, "mode", "nearest")
    if ctx.node.op_type == "Upsample" or ctx.opset < 11:
        scales_in, sizes_in, policy = 1, None, "stretch"
        coord, nearest = "asymmetric", "floor"
    else:
        scales_in, sizes_in = 2, 3
        coord = _attr_str(ctx, "coordinate_transformation_mode", "half_pixel")
        nearest = _attr_str(ctx, "nearest_mode", "round_prefer_floor")
        policy = _attr_str(ctx, "keep_aspect_ratio_policy", "stretch")
        if policy not in ("stretch", "not_larger", "not_smaller"):
            raise ctx.fail(f"keep_aspect_ratio_policy {policy} is not supported")
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    if mode not in ("nearest", "linear", "cubic"):
        raise ctx.fail(f"mode {mode} is not supported")
    axes = [int(a) % rank for a in ctx.attrs.get("axes", range(rank))]
    props = dict(mode=mode, coordinate_transformation_mode=coord, nearest_mode=nearest,
                 cubic_coeff_a=float(ctx.attrs.get("cubic_coeff_a", -0.75)),
                 exclude_outside=bool(ctx.attrs.get("exclude_outside", 0)))
    # (an attribute of Resize 18; nearest has no filter to widen)
    antialias = ctx.opset >= 18 and bool(ctx.attrs.get("antialias", 0)) and mode != "nearest"
    if coord == "tf_crop_and_resize":
        if antialias:
            raise ctx.fail("antialias with tf_crop_and_resize is not supported")
        return _crop_and_resize(ctx, x, axes, sizes_in, props)
    if antialias:
        return antialiased_resize(ctx, x, _antialias_axes(ctx, x, axes, scales_in, sizes_in, policy), props)

    def expand(vals, fill):
        full = list(fill)
        for a, v in zip(axes, vals):
            full[a] = v
        return full

    if sizes_in is not None and ctx.input(sizes_in) is not None and ctx.shape(ctx.input(sizes_in)) != (0,):
        if ctx.shape(ctx.input(sizes_in)) != (len(axes),):
            raise ctx.fail(f"sizes of shape {ctx.shape(ctx.input(sizes_in))} for {len(axes)} axes")
        if policy != "stretch":
            scales, sizes = _aspect_kept(ctx, [shape[a] for a in axes], sizes_in, policy)
            return ctx.emit(nn.ResizeOp, [x, scales], scales=[1.0] * rank, sizes=expand(sizes, shape), axes=axes,
                            **props)
        sizes = ctx.known_dims(sizes_in, "sizes", run_time=True)
        return ctx.emit(nn.ResizeOp, [x], scales=[1.0] * rank, sizes=expand(sizes, shape), **props)
    if ctx.node.op_type == "Upsample" and ctx.opset < 9:
        return ctx.emit(nn.ResizeOp, [x], scales=[float(s) for s in ctx.attrs["scales"]], **props)
    if ctx.input(scales_in) is None:
        raise ctx.fail("needs scales or sizes")
    n_scales = ctx.shape(ctx.input(scales_in))
    if n_scales != (len(axes),):
        raise ctx.fail(f"scales of shape {n_scales} for {len(axes)} axes")
    s = ctx.const_input(scales_in)
    if s is not None:
        return ctx.emit(nn.ResizeOp, [x], scales=expand([float(v) for v in np.asarray(s).ravel()], [1.0] * rank),
                        **props)
    scales = ctx.input(scales_in)
    if graph.dtype_of(scales.type) is not DType.FLOAT32:
        raise ctx.fail("run-time scales must be float32")
    sizes = expand(_bound_sizes(ctx, ctx.emit(graph.MulOp, [_float_dims(ctx, [shape[a] for a in axes]), scales])[0]),
                   shape)
    return ctx.emit(nn.ResizeOp, [x, scales], scales=[1.0] * rank, sizes=sizes, axes=axes, **props)


@converter("GridSample")
def _grid_sample(ctx: _NodeContext):
    mode = _attr_str(ctx, "mode", "linear" if ctx.opset >= 20 else "bilinear")
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    if mode not in ("nearest", "linear", "cubic"):
        raise ctx.fail(f"mode {mode} is not supported")
    padding = _attr_str(ctx, "padding_mode", "zeros")
    if padding not in ("zeros", "border", "reflection"):
        raise ctx.fail(f"padding_mode {padding} is not supported")
    return ctx.emit(nn.GridSampleOp, [ctx.input(0), ctx.input(1)], mode=mode, padding_mode=padding,
                    align_corners=bool(ctx.attrs.get("align_corners", 0)))


@converter("AffineGrid")
def _affine_grid(ctx: _NodeContext):
    size = ctx.known_dims(1, "size", run_time=True)
    return ctx.emit(nn.AffineGridOp, [ctx.input(0)], size=size, align_corners=bool(ctx.attrs.get("align_corners", 0)))
