"""Det: the determinant of each square matrix in the last two dims."""
from __future__ import annotations

from pyflame_rt.dialects import graph_linalg as gl
from pyflame_rt.importers.onnx.converters import _NodeContext, converter


@converter("Det")
def _det(ctx: _NodeContext):
    return ctx.emit(gl.DetOp, [ctx.input(0)])
