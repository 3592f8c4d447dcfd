"""Which element type a GEMM's packed constant B takes (`kernels/gemm.py` PanelType).

`convert-to-fp16` / `convert-to-bf16` then `legalize-half-precision` leave a half-precision GEMM
computing in float32 on half values: `matmul(cast<f32>(a: bf16), w)`, w folded from the bf16 copy
of the weight. Such a GEMM loses nothing when its weight is stored in the half type (half the
bytes, widened in the K loop), nor, for bf16 on a target with AMX or AVX512-BF16, when A is
converted to bf16 for tdpbf16ps / vdpbf16ps: both operands hold only half values, so every product is exact, and only the
float32 accumulation's order differs. The GEMM is recognized by what its operands hold, not by the
compile's mode: A is a float32 Cast of a half value (through ops that only move data), and B's
every value is one of the half type. Other GEMMs (float32 models, excluded layers) keep float32
panels.
"""
from __future__ import annotations

import numpy as np
from xdsl.dialects import func
from xdsl.ir import SSAValue

from pyflame_rt.dialects import graph, graph_math as gm, graph_nn as nn
from pyflame_rt.dtype import DType
from pyflame_rt.targets.cpu.kernels.gemm import PanelType
from pyflame_rt.targets.cpu.target import CPUTarget

HALF_TYPES = (DType.FLOAT16, DType.BFLOAT16)
# ops whose result holds only values of their (first) operand: a half-rounded operand gives a
# half-rounded result (a layout change between a Cast and a channels-last convolution)
MOVES_DATA = (nn.TransposeOp, graph.ReshapeOp, graph.FlattenOp, nn.SqueezeOp, nn.UnsqueezeOp)


def half_rounded_values(fn: func.FuncOp) -> dict[SSAValue, DType]:
    """float32 values of `fn` that hold only values of a half type, and that type."""
    rounded: dict[SSAValue, DType] = {}
    for op in fn.walk():
        if isinstance(op, gm.CastOp) and graph.dtype_of(op.result.type) is DType.FLOAT32 \
                and graph.dtype_of(op.input.type) in HALF_TYPES:
            rounded[op.result] = graph.dtype_of(op.input.type)
        elif isinstance(op, MOVES_DATA) and op.operands[0] in rounded:
            rounded[op.results[0]] = rounded[op.operands[0]]
    return rounded


def panel_type(target: CPUTarget, a_half: DType | None, b: np.ndarray) -> PanelType:
    """The panel type of a GEMM whose A holds values of `a_half` (None: any float32) by constant `b`."""
    if a_half is DType.BFLOAT16 and _is_bfloat16(b):
        if target.vector_width == 16 and {"amx-tile", "amx-bf16"} <= set(target.features):
            return PanelType.BF16_TILES
        pairs = "avx512bf16" in target.features and target.vector_width == 16
        return PanelType.BF16_PAIRS if pairs else PanelType.BF16
    # float16 -> float32 is one instruction with F16C (else a library call per element)
    if a_half is DType.FLOAT16 and "f16c" in target.features and _is_float16(b):
        return PanelType.F16
    return PanelType.F32


def _is_bfloat16(b: np.ndarray) -> bool:
    """Every value is a bfloat16 (the low half of its float32 bits is zero)."""
    return not np.any(np.ascontiguousarray(b, dtype=np.float32).view(np.uint32) & 0xFFFF)


def _is_float16(b: np.ndarray) -> bool:
    b = np.asarray(b, dtype=np.float32)
    return np.array_equal(b.astype(np.float16).astype(np.float32), b, equal_nan=True)
