"""Converters for the core ONNX ops: arithmetic, Gemm/MatMul, Flatten/Reshape, Constant."""
from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from pyflame_rt.dialects import graph
from pyflame_rt.dialects.assumptions import require_nonempty
from pyflame_rt.dialects.symbolic import dim_div, numel
from pyflame_rt.importers.onnx.converters import _NodeContext, converter
from pyflame_rt.importers.onnx.run_time_shapes import ShapeArithmetic, known_only_at_run_time

_BINARY = {"Add": graph.AddOp, "Sub": graph.SubOp, "Mul": graph.MulOp, "Div": graph.DivOp}
_UNARY = {"Relu": graph.ReluOp, "Identity": graph.IdentityOp}


@converter(*_BINARY)
def _binary(ctx: _NodeContext):
    if ctx.opset < 7 or ctx.attrs.get("broadcast", 1) == 0 and "axis" in ctx.attrs:
        raise ctx.fail("legacy axis broadcasting is not supported")
    return ctx.emit(_BINARY[ctx.node.op_type], [ctx.input(0), ctx.input(1)])


@converter(*_UNARY)
def _unary(ctx: _NodeContext):
    if ctx.node.op_type == "Identity" and ctx.structured(0) is not None:  # a sequence or optional passes as is
        return [ctx.structured(0)]
    return ctx.emit(_UNARY[ctx.node.op_type], [ctx.input(0)])


@converter("Dropout")
def _dropout(ctx: _NodeContext):
    """Inference mode: Dropout is the identity and its optional mask is all true."""
    out = ctx.emit(graph.IdentityOp, [ctx.input(0)])
    if len(ctx.node.output) > 1 and ctx.node.output[1]:
        shape = ctx.shape(ctx.input(0))
        if not all(isinstance(d, int) for d in shape):
            raise ctx.fail("the mask output of a dynamically shaped input is not supported")
        out.append(ctx.importer.add_constant(ctx.node.output[1], np.ones(shape, dtype=bool)))
    return out


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
    allowzero = bool(ctx.attrs.get("allowzero", 0))
    if ctx.opset < 5:
        shape = [int(x) for x in ctx.attrs["shape"]]
    else:
        known = ctx.sym_input(1)
        if known is None and known_only_at_run_time(ctx, 1):
            return _reshape_run_time(ctx, allowzero)
        target = [] if known is None else list(known.values.flat)  # not known: an empty shape
        shape = symbolic_reshape_target(ctx.shape(ctx.input(0)), target, allowzero)
    return ctx.emit(graph.ReshapeOp, [ctx.input(0)], shape=shape, allowzero=allowzero)


def _reshape_run_time(ctx: _NodeContext, allowzero: bool):
    """A target shape known only at run time: the dims its values give (0 copies the input's dim
    unless allowzero, one -1 at most is inferred, any other negative value is refused); the element
    counts must match (a shape assumption)."""
    sa = ShapeArithmetic(ctx)
    src = ctx.shape(ctx.input(0))
    target = sa.operand(1)
    n = sa.size(target)
    if not allowzero:  # a 0 past the input's rank has no dim to copy: -2 makes it invalid
        target = sa.where(sa.eq(target, 0), sa.dims([*src[:n], *[-2] * (n - len(src))]), target)
    inferred = sa.eq(target, -1)
    target = sa.where(inferred, sa.div(sa.dims([numel(src)]), sa.reduce("prod", sa.where(inferred, 1, target))),
                      target)
    valid = sa.both(sa.lt(sa.reduce("sum", inferred), 2), sa.eq(sa.reduce("sum", sa.lt(target, 0)), 0))
    dims = sa.bind(target, "shape", valid, "the shape has two -1, a value below -1 or a 0 past the input's rank")
    return ctx.emit(graph.ReshapeOp, [ctx.input(0)], shape=dims)


def symbolic_reshape_target(src, target, allowzero: bool) -> list:
    """Encode a target of ints / symbolic dims as ONNX ints where they can express it. The target is
    first resolved to dims (0 copies, -1 is solved from the element count); then a dim equal to the
    input's dim at the same position becomes 0 (copy), one remaining symbolic dim becomes -1
    (inferred). With more symbolic dims left ([b*s, d] -> [b, s, d]) the resolved dims are the target."""
    dims = [src[i] if d == 0 and not allowzero and i < len(src) else d for i, d in enumerate(target)]
    if -1 in dims:
        known = numel(tuple(d for d in dims if d != -1))
        require_nonempty(known, f"Reshape to {list(map(str, target))}: the -1 dim cannot be inferred when the "
                                "other dims hold no elements")
        dims[dims.index(-1)] = dim_div(numel(tuple(src)), known)
    out: list[int] = []
    for i, d in enumerate(dims):
        if isinstance(d, int):
            out.append(d)
        elif i < len(src) and src[i] == d and not allowzero:
            out.append(0)
        elif -1 in out:
            return dims
        else:
            out.append(-1)
    return out


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
