"""Converters for the core ONNX ops: arithmetic, Gemm/MatMul, Flatten/Reshape, Constant."""
from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from pyflame_rt.dialects import graph
from pyflame_rt.import_module.onnx_importer import _NodeContext, converter

_BINARY = {"Add": graph.AddOp, "Sub": graph.SubOp, "Mul": graph.MulOp, "Div": graph.DivOp}
_UNARY = {"Relu": graph.ReluOp, "Identity": graph.IdentityOp}


@converter(*_BINARY)
def _binary(ctx: _NodeContext):
    if ctx.opset < 7 or ctx.attrs.get("broadcast", 1) == 0 and "axis" in ctx.attrs:
        raise ctx.fail("legacy axis broadcasting is not supported")
    return ctx.emit(_BINARY[ctx.node.op_type], [ctx.input(0), ctx.input(1)])


@converter(*_UNARY)
def _unary(ctx: _NodeContext):
    return ctx.emit(_UNARY[ctx.node.op_type], [ctx.input(0)])


@converter("Dropout")
def _dropout(ctx: _NodeContext):
    """Inference mode: Dropout is the identity (the optional mask output is unsupported)."""
    if len(ctx.node.output) > 1 and ctx.node.output[1]:
        raise ctx.fail("the mask output is not supported")
    return ctx.emit(graph.IdentityOp, [ctx.input(0)])


@converter("Gemm")
def _gemm(ctx: _NodeContext):
    return ctx.emit(
        graph.GemmOp, [ctx.input(0), ctx.input(1), ctx.input(2)],
        alpha=float(ctx.attrs.get("alpha", 1.0)), beta=float(ctx.attrs.get("beta", 1.0)),
        trans_a=bool(ctx.attrs.get("transA", 0)), trans_b=bool(ctx.attrs.get("transB", 0)),
    )


@converter("MatMul")
def _matmul(ctx: _NodeContext):
    return ctx.emit(graph.MatMulOp, [ctx.input(0), ctx.input(1)])


@converter("Flatten")
def _flatten(ctx: _NodeContext):
    return ctx.emit(graph.FlattenOp, [ctx.input(0)], axis=int(ctx.attrs.get("axis", 1)))


@converter("Reshape")
def _reshape(ctx: _NodeContext):
    if ctx.opset < 5:
        shape = ctx.attrs["shape"]
    else:
        shape = ctx.const_input(1)
        if shape is None:
            raise ctx.fail("the target shape must be a constant")
    return ctx.emit(graph.ReshapeOp, [ctx.input(0)], shape=[int(x) for x in np.asarray(shape).ravel()],
                    allowzero=bool(ctx.attrs.get("allowzero", 0)))


@converter("Constant")
def _constant(ctx: _NodeContext):
    a = ctx.node.attribute[0]
    if a.name == "value":
        arr = numpy_helper.to_array(a.t)
    elif a.name in ("value_float", "value_int"):
        arr = np.array(ctx.attrs[a.name], dtype=np.float32 if a.name == "value_float" else np.int64)
    elif a.name in ("value_floats", "value_ints"):
        arr = np.array(ctx.attrs[a.name], dtype=np.float32 if a.name == "value_floats" else np.int64)
    else:
        raise ctx.fail(f"attribute {a.name} is not supported")
    return [ctx.importer.add_constant(ctx.node.output[0], arr)]
