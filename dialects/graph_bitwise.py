"""Bitwise ops of the `graph` dialect on integer tensors: And / Or / Xor / Not and BitShift.

Shapes broadcast like the core arithmetic ops; both operands share one integer element type.
"""
from __future__ import annotations

from xdsl.irdl import irdl_op_definition, prop_def

from pyflame_rt.dialects.graph import ElementwiseBinaryOp, ElementwiseUnaryOp, same_dtype
from pyflame_rt.dialects.graph_attrs import ShiftDirectionAttr, enum_attr
from pyflame_rt.dialects.graph_math import INTEGER_DTYPES
from pyflame_rt.errors import DTypeMismatchError


def _integer(dtypes, what: str):
    d = same_dtype(dtypes, what)
    if d not in INTEGER_DTYPES:
        raise DTypeMismatchError(f"{what} needs integer tensors, got {d.value}")
    return [d]


class BitwiseBinaryOp(ElementwiseBinaryOp):
    def infer_dtypes(self, dtypes):
        return _integer(dtypes, self.name)


@irdl_op_definition
class BitwiseAndOp(BitwiseBinaryOp):
    name = "graph.bitwise_and"


@irdl_op_definition
class BitwiseOrOp(BitwiseBinaryOp):
    name = "graph.bitwise_or"


@irdl_op_definition
class BitwiseXorOp(BitwiseBinaryOp):
    name = "graph.bitwise_xor"


@irdl_op_definition
class BitwiseNotOp(ElementwiseUnaryOp):
    name = "graph.bitwise_not"

    def infer_dtypes(self, dtypes):
        return _integer(dtypes, self.name)


@irdl_op_definition
class BitShiftOp(BitwiseBinaryOp):
    """x shifted by y bits ("left" or "right"; right shifts of signed types are arithmetic). Amounts
    outside [0, bits) leave only the sign fill: -1 for a negative x shifted right, else 0."""

    name = "graph.bit_shift"
    direction = prop_def(ShiftDirectionAttr)

    def __init__(self, lhs, rhs, result_type, direction: str = "left"):
        super().__init__(lhs, rhs, result_type, direction=enum_attr(ShiftDirectionAttr, direction))


BITWISE_OPS = [BitwiseAndOp, BitwiseOrOp, BitwiseXorOp, BitwiseNotOp, BitShiftOp]
