"""Converters for the resampling ops: Resize / Upsample, GridSample, AffineGrid.

Resize sizes may be constants, Shape arithmetic over the input dims, or a graph input whose
elements become dims bound at run time. Scales that are not constants (a graph input or computed)
give output dims floor(in * scale) computed by graph ops and bound at run time (`graph.bind_dims`);
the op keeps the scales tensor, whose values the coordinate transform uses.
"""
from __future__ import annotations

import numpy as np
from xdsl.ir import SSAValue

from pyflame_rt.dialects import graph, graph_math as gm, graph_nn as nn, graph_tensor as gt
from pyflame_rt.dialects.symbolic import Dim, SymDim
from pyflame_rt.dtype import DType
from pyflame_rt.importers.onnx.converters import _NodeContext, converter


def _attr_str(ctx: _NodeContext, name: str, default: str) -> str:
    v = ctx.attrs.get(name, default)
    return v.decode() if isinstance(v, bytes) else v


def _scaled_dims(ctx: _NodeContext, dims: list[Dim], scales: SSAValue) -> list[Dim]:
    """floor(dims[k] * scales[k]), computed by graph ops and bound as new dims by the run (a
    negative or non-finite product fails the binding's check before any kernel reads it)."""
    importer = ctx.importer
    values = gt.DimValuesOp(dims, [len(dims)])
    importer.builder.insert(values)
    importer.shapes[values.result] = (len(dims),)
    product = ctx.emit(graph.MulOp, [ctx.emit(gm.CastOp, [values.result], to="float32")[0], scales])[0]
    sizes = ctx.emit(gm.CastOp, [ctx.emit(gm.FloorOp, [product])[0]], to="int64")[0]
    names = [importer.new_dim(f"{ctx.node.output[0]}_{k}") for k in range(len(dims))]
    bind = gt.BindDimsOp(sizes, names)
    importer.builder.insert(bind)
    importer.shapes[bind.result] = (len(dims),)
    return [SymDim.of(n) for n in names]


@converter("Resize", "Upsample")
def _resize(ctx: _NodeContext):
    x = ctx.input(0)
    shape = ctx.shape(x)
    rank = len(shape)
    mode = _attr_str(ctx, "mode", "nearest")
    if ctx.node.op_type == "Upsample" or ctx.opset < 11:
        scales_in, sizes_in = 1, None
        coord, nearest = "asymmetric", "floor"
    else:
        scales_in, sizes_in = 2, 3
        coord = _attr_str(ctx, "coordinate_transformation_mode", "half_pixel")
        nearest = _attr_str(ctx, "nearest_mode", "round_prefer_floor")
        if ctx.attrs.get("antialias", 0):
            raise ctx.fail("antialias is not supported")
        if _attr_str(ctx, "keep_aspect_ratio_policy", "stretch") != "stretch":
            raise ctx.fail("keep_aspect_ratio_policy other than stretch is not supported")
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    if mode not in ("nearest", "linear", "cubic"):
        raise ctx.fail(f"mode {mode} is not supported")
    if coord == "tf_crop_and_resize":
        raise ctx.fail("coordinate_transformation_mode tf_crop_and_resize is not supported")
    axes = [int(a) % rank for a in ctx.attrs.get("axes", range(rank))]
    props = dict(mode=mode, coordinate_transformation_mode=coord, nearest_mode=nearest,
                 cubic_coeff_a=float(ctx.attrs.get("cubic_coeff_a", -0.75)),
                 exclude_outside=bool(ctx.attrs.get("exclude_outside", 0)))

    def expand(vals, fill):
        full = list(fill)
        for a, v in zip(axes, vals):
            full[a] = v
        return full

    if sizes_in is not None and ctx.input(sizes_in) is not None and ctx.shape(ctx.input(sizes_in)) != (0,):
        sizes = ctx.known_dims(sizes_in, "sizes", run_time=True)
        if len(sizes) != len(axes):
            raise ctx.fail(f"{len(sizes)} sizes for {len(axes)} axes")
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
    sizes = expand(_scaled_dims(ctx, [shape[a] for a in axes], scales), shape)
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
