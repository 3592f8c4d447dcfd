"""Converters for the bitwise operators: BitwiseAnd / Or / Xor / Not and BitShift."""
from __future__ import annotations

from pyflame_rt.dialects import graph_bitwise as gb
from pyflame_rt.importers.onnx.converters import _NodeContext, converter

_BINARY = {"BitwiseAnd": gb.BitwiseAndOp, "BitwiseOr": gb.BitwiseOrOp, "BitwiseXor": gb.BitwiseXorOp}


@converter(*_BINARY)
def _binary(ctx: _NodeContext):
    return ctx.emit(_BINARY[ctx.node.op_type], [ctx.input(0), ctx.input(1)])


@converter("BitwiseNot")
def _not(ctx: _NodeContext):
    return ctx.emit(gb.BitwiseNotOp, [ctx.input(0)])


@converter("BitShift")
def _bit_shift(ctx: _NodeContext):
    direction = ctx.attrs.get("direction", b"")
    direction = (direction.decode() if isinstance(direction, bytes) else direction).lower()
    if direction not in ("left", "right"):
        raise ctx.fail(f"direction must be LEFT or RIGHT, got '{direction}'")
    return ctx.emit(gb.BitShiftOp, [ctx.input(0), ctx.input(1)], direction=direction)
