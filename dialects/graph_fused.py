"""Fused ops of the `graph` dialect: created by the fusion passes, never by an importer.

They keep one memory pass for what the exported graph spends several on:
`graph.mul_add` is Mul+Add, `graph.matmul_bias` is a MatMul whose row-vector Add
the GEMM epilogue applies (any rank of A, as in transformer Linear layers; 2-D
ones become `graph.gemm`), optionally with a residual tensor added there too (a
transformer block's skip connection). Both take an optional fused `activation`.
"""
from __future__ import annotations

from xdsl.dialects.builtin import TensorType
from xdsl.ir import SSAValue
from xdsl.irdl import irdl_op_definition, operand_def, opt_operand_def, result_def

from pyflame_rt.dialects.assumptions import require_same_shape
from pyflame_rt.dialects.graph import (
    GraphOp, activation_prop, activation_props, broadcast_shapes, matmul_shape, same_dtype)
from pyflame_rt.dialects.graph_attrs import ActivationAttr
from pyflame_rt.errors import ShapeMismatchError


class FusedOp(GraphOp):
    """Three operands, one result, an optional fused `activation` (what both fused ops share)."""

    activation = activation_prop()
    result = result_def(TensorType)
    assembly_format = "operands attr-dict `:` functional-type(operands, results)"

    def __init__(self, x: SSAValue, y: SSAValue, z: SSAValue, result_type: TensorType,
                 activation: ActivationAttr | None = None):
        super().__init__(operands=[x, y, z], result_types=[result_type], properties=activation_props(activation))

    def infer_dtypes(self, dtypes):
        return [same_dtype(dtypes, self.name)]


@irdl_op_definition
class MulAddOp(FusedOp):
    """a * b + c with multidirectional broadcasting of all three (then the activation, if any)."""

    name = "graph.mul_add"
    a = operand_def(TensorType)
    b = operand_def(TensorType)
    c = operand_def(TensorType)

    def infer_shapes(self, shapes):
        return [broadcast_shapes(broadcast_shapes(shapes[0], shapes[1]), shapes[2])]


@irdl_op_definition
class MatMulBiasOp(FusedOp):
    """matmul(lhs, rhs) + bias (+ residual), rhs 2-D [K, N], bias [N], the optional residual of the
    result's shape (then the activation, if any)."""

    name = "graph.matmul_bias"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    bias = operand_def(TensorType)
    residual = opt_operand_def(TensorType)

    def __init__(self, lhs: SSAValue, rhs: SSAValue, bias: SSAValue, result_type: TensorType,
                 activation: ActivationAttr | None = None, residual: SSAValue | None = None):
        GraphOp.__init__(self, operands=[lhs, rhs, bias, [residual] if residual is not None else []],
                         result_types=[result_type], properties=activation_props(activation))

    def infer_shapes(self, shapes):
        if len(shapes[1]) != 2:
            raise ShapeMismatchError(f"matmul_bias needs a 2-D rhs, got rank {len(shapes[1])}")
        out = matmul_shape(shapes[0], shapes[1])
        require_same_shape(shapes[2], (shapes[1][1],), "matmul_bias bias differs from [rhs columns]")
        if len(shapes) > 3:
            require_same_shape(shapes[3], out, "matmul_bias residual differs from the result's shape")
        return [out]


FUSED_OPS = [MulAddOp, MatMulBiasOp]
