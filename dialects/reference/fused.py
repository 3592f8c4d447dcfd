"""Reference semantics of the fused ops (dialects/graph_fused.py); activations are applied by evaluate_op."""
from __future__ import annotations

from pyflame_rt.dialects import graph_fused
from pyflame_rt.dialects.reference.evaluator import reference


@reference(graph_fused.MulAddOp)
def _mul_add(op, x):
    return x[0] * x[1] + x[2]


@reference(graph_fused.MatMulBiasOp)
def _matmul_bias(op, x):
    out = x[0] @ x[1] + x[2]
    return out + x[3] if len(x) > 3 else out
