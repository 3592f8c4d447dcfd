"""Reference semantics of the `quant` ops (dialects/quant.py): numpy's round-half-to-even, clamp
and exact integer products; a quantized compute op is its float op's reference between them."""
from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import TensorType

from pyflame_rt.dialects import graph, quant
from pyflame_rt.dialects.reference.evaluator import evaluate_op, reference
from pyflame_rt.dtype import DType


def dequantize(q: np.ndarray, t: quant.UniformQuantType) -> np.ndarray:
    scale, zp = t.scale_array(q.ndim)
    return ((q.astype(np.float32) - zp) * scale).astype(np.float32)


def quantize(x: np.ndarray, t: quant.UniformQuantType) -> np.ndarray:
    scale, zp = t.scale_array(x.ndim)
    lo, hi = t.bounds
    return np.clip(np.rint(x / scale) + zp, lo, hi).astype(t.dtype.numpy)


def _float_op(op, inputs: list[np.ndarray], dtype: DType) -> np.ndarray:
    """op.float_op's reference on `inputs`, its result of element type `dtype`."""
    probe = op.float_op(list(op.operands), TensorType(graph.element_type(dtype), op.result.type.get_shape()))
    try:
        return evaluate_op(probe, inputs)[0]
    finally:
        probe.erase()


@reference(quant.QuantizeOp)
def _quantize(op, x):
    return quantize(x[0], op.type)


@reference(quant.DequantizeOp)
def _dequantize(op, x):
    return dequantize(x[0], op.type)


@reference(quant.RequantizeOp)
def _requantize(op, x):
    return quantize(dequantize(x[0], op.input_type), op.type)


def dynamic_quantize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DynamicQuantizeLinear: x as uint8 from its range extended to 0, its scale and zero point."""
    lo, hi = min(float(x.min(initial=0.0)), 0.0), max(float(x.max(initial=0.0)), 0.0)
    scale = np.float32((np.float32(hi) - np.float32(lo)) / np.float32(255))
    zp = np.clip(np.rint(-np.float32(lo) / scale), 0, 255)
    y = np.clip(np.rint(x / scale) + zp, 0, 255)
    return y.astype(np.uint8), np.array(scale, np.float32), np.array(zp, np.uint8)


@reference(quant.DynamicQuantizeOp)
def _dynamic_quantize(op, x):
    return dynamic_quantize(x[0])


@reference(*[cls for cls in quant.QUANT_OPS if issubclass(cls, quant.QuantizedComputeOp)])
def _quantized_compute(op, xs):
    n = len(op.quantized_operands)
    inputs = [dequantize(x, t) for x, t in zip(xs[:n], op.input_types.data)]
    if op.bias_scales is not None:
        inputs.append((xs[n].astype(np.float32) * op.bias_scales).astype(np.float32))
    return quantize(_float_op(op, inputs, DType.FLOAT32), op.type)


@reference(quant.MatMulIntegerOp, quant.ConvIntegerOp)
def _integer_compute(op, xs):
    a, b, az, bz = (x.astype(np.float64) for x in xs)
    if bz.ndim == 1 and b.ndim > 2:  # a conv weight's per-output-channel zero point
        bz = bz.reshape(-1, *[1] * (b.ndim - 1))
    return _float_op(op, [a - az, b - bz], DType.FLOAT64).round().astype(np.int32)


@reference(quant.MatMulIntegerToFloatOp)
def _integer_to_float(op, xs):
    """The exact integer product, then x a_scale x b_scale (b_scale per column or one) + bias in float32."""
    a, b, a_scale, b_scale, az, bz = xs[:6]
    sums = np.matmul(a.astype(np.float64) - az.astype(np.float64), b.astype(np.float64) - bz.astype(np.float64))
    y = sums.astype(np.float32) * (a_scale.astype(np.float32) * b_scale.astype(np.float32))
    return y + xs[6] if len(xs) > 6 else y
