"""Converters for GatherElements, ScatterElements (and its deprecated alias Scatter), GatherND
and ScatterND: element-wise indexing with run-time index checks."""
from __future__ import annotations

from pyflame_rt.dialects import graph_index as gi
from pyflame_rt.importers.onnx.converters import _NodeContext, converter


def _reduction(ctx: _NodeContext) -> str:
    reduction = ctx.attrs.get("reduction", b"none")
    return reduction.decode() if isinstance(reduction, bytes) else reduction


@converter("GatherElements")
def _gather_elements(ctx: _NodeContext):
    return ctx.emit(gi.GatherElementsOp, [ctx.input(0), ctx.input(1)], axis=int(ctx.attrs.get("axis", 0)))


@converter("ScatterElements", "Scatter")
def _scatter_elements(ctx: _NodeContext):
    return ctx.emit(gi.ScatterElementsOp, [ctx.input(0), ctx.input(1), ctx.input(2)],
                    axis=int(ctx.attrs.get("axis", 0)), reduction=_reduction(ctx))


@converter("GatherND")
def _gather_nd(ctx: _NodeContext):
    return ctx.emit(gi.GatherNDOp, [ctx.input(0), ctx.input(1)], batch_dims=int(ctx.attrs.get("batch_dims", 0)))


@converter("ScatterND")
def _scatter_nd(ctx: _NodeContext):
    return ctx.emit(gi.ScatterNDOp, [ctx.input(0), ctx.input(1), ctx.input(2)], reduction=_reduction(ctx))
