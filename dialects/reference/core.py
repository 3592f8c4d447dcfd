"""Reference semantics of the core graph ops (see dialects/graph.py)."""
from __future__ import annotations

import numpy as np

from pyflame_rt.dialects import graph
from pyflame_rt.dialects.graph import reshape_shape
from pyflame_rt.errors import InputError
from pyflame_rt.dialects.reference.evaluator import dim_value, reference

_BINARY = {graph.AddOp: np.add, graph.SubOp: np.subtract, graph.MulOp: np.multiply}


@reference(*_BINARY)
def _binary(op, x):
    return _BINARY[type(op)](x[0], x[1])


def check_divisor(b: np.ndarray, what: str) -> None:
    """Integer Div / Mod by zero fails, as in onnxruntime (and the compiled kernels)."""
    if np.issubdtype(b.dtype, np.integer) and not np.all(b):
        raise InputError(f"integer {what} by zero (an element of the divisor is 0)")


@reference(graph.DivOp)
def _div(op, x):
    a, b = x
    if not np.issubdtype(a.dtype, np.integer):
        return a / b
    check_divisor(b, "division")
    with np.errstate(over="ignore"):  # INT_MIN // -1 wraps, like the kernels
        q = np.floor_divide(a, b)
        inexact = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
    return np.where(inexact, q + 1, q).astype(a.dtype)  # ONNX integer Div truncates toward zero


@reference(graph.ReluOp)
def _relu(op, x):
    return np.maximum(x[0], np.zeros((), x[0].dtype))


@reference(graph.IdentityOp)
def _identity(op, x):
    return x[0].copy()


@reference(graph.GemmOp)
def _gemm(op, x):
    a = x[0].T if op.trans_a.value.data else x[0]
    b = x[1].T if op.trans_b.value.data else x[1]
    y = op.alpha.value.data * (a @ b)
    if len(x) > 2:
        y = y + op.beta.value.data * x[2]
    return y


@reference(graph.MatMulOp)
def _matmul(op, x):
    return np.matmul(x[0], x[1])


@reference(graph.FlattenOp)
def _flatten(op, x):
    axis = op.axis.value.data
    axis = axis + x[0].ndim if axis < 0 else axis
    return x[0].reshape(int(np.prod(x[0].shape[:axis])), int(np.prod(x[0].shape[axis:])))


@reference(graph.ReshapeOp)
def _reshape(op, x):
    shape = reshape_shape(x[0].shape, [dim_value(d) for d in op.target()], op.allowzero.value.data)
    return x[0].reshape(shape)
