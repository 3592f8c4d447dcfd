"""Gemm / MatMul -> packed-B register-blocked GEMM kernels (see kernels/gemm.py), float32 or float64."""
from __future__ import annotations

import numpy as np
from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern

from pyflame_rt.dialects import graph, graph_fused
from pyflame_rt.dialects.symbolic import Dim, dim_mul, numel
from pyflame_rt.dtype import DType
from pyflame_rt.errors import UnsupportedOperatorError
from pyflame_rt.targets.cpu.kernels.elementwise import activation_spelling
from pyflame_rt.targets.cpu.lowerings.pattern import GraphToKernelPattern


def _row_bias(c: np.ndarray | None, n: Dim, beta: float) -> np.ndarray | None:
    """A constant C that is a row vector (or scalar) becomes the fused bias."""
    if c is None or not isinstance(n, int):
        return None
    if c.size == 1 or (c.shape[-1] == n and c.size == n):
        return np.broadcast_to(c.reshape(-1) * beta, (n,))
    return None


def gemm_dtype(L, op) -> DType:
    """The GEMM's element type: float32, or float64 when the result is (every operand alike)."""
    dtype = DType.FLOAT64 if L.dtype(op.results[0]) is DType.FLOAT64 else DType.FLOAT32
    bad = [L.dtype(v).value for v in op.operands if L.dtype(v) is not dtype]
    if bad:
        raise UnsupportedOperatorError(f"{op.name} on the CPU backend needs {dtype.value} operands, got {bad[0]}")
    return dtype


class LowerGemm(GraphToKernelPattern):
    """alpha folds into a constant B and beta into a row-vector C (the GEMM's bias); otherwise they
    scale elementwise after the GEMM: out * alpha, then C * beta + out."""

    float32_only = (graph.GemmOp,)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: graph.GemmOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: graph.GemmOp) -> None:
        dtype = gemm_dtype(L, op)
        sa, sb = L.shapes[op.a], L.shapes[op.b]
        ta, tb = op.trans_a.value.data, op.trans_b.value.data
        alpha, beta = op.alpha.value.data, op.beta.value.data
        m, k = (sa[1], sa[0]) if ta else (sa[0], sa[1])
        n = sb[0] if tb else sb[1]
        a_strides = (1, sa[1]) if ta else (sa[1], 1)
        out, out_shape = L.result_loc(op.result), L.shapes[op.result]
        b = L.const_value(op.b)
        c_val = op.c
        scale_after = b is None and alpha != 1.0
        c_const = L.const_value(c_val) if c_val is not None and not scale_after else None
        bias = _row_bias(c_const, n, beta)
        kw = {}
        if b is not None:
            kw["b_const"] = ((b.T if tb else b) * alpha)[None]
        else:
            kw.update(b_value=op.b, b_strides=(1, sb[1], 0) if tb else (sb[1], 1, 0))
        act = activation_spelling(graph.activation_of(op))
        add_c = c_val is not None and bias is None  # then the activation follows the elementwise add
        L.emit_gemm(a=op.a, a_strides=a_strides, m=m, k=k, n=n, out=out, bias=bias,
                    activation="none" if add_c or scale_after else act or "none", dtype=dtype, **kw)
        if scale_after:
            L.emit_elementwise("scale", [op.result], out, out_shape, params=(alpha,), activation=None if add_c else act)
        if add_c:
            L.emit_elementwise("add" if beta == 1.0 else "scaled_add", [c_val, op.result], out, out_shape,
                               out_dtype=dtype, params=() if beta == 1.0 else (beta,), activation=act)


def _batch_expanded(L, v, shape2: tuple, batch_shape: tuple):
    """v itself when it holds one matrix per batch, else (its batch dims broadcast against the
    other operand's) a buffer holding v expanded to batch_shape: the GEMM reads one matrix per batch."""
    if numel(shape2[:-2]) == numel(batch_shape):
        return v
    out_shape = (*batch_shape, *shape2[-2:])
    buf = L.new_buffer(dim_mul(numel(out_shape), L.dtype(v).itemsize))
    L.emit_elementwise("copy", [v], buf, out_shape)
    return buf


class LowerMatmul(GraphToKernelPattern):
    """MatMulBias: the bias row, the residual and the activation go into the GEMM epilogue."""

    float32_only = (graph.MatMulOp, graph_fused.MatMulBiasOp)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: graph.MatMulOp | graph_fused.MatMulBiasOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: graph.MatMulOp | graph_fused.MatMulBiasOp) -> None:
        dtype = gemm_dtype(L, op)
        sa, sb = L.shapes[op.lhs], L.shapes[op.rhs]
        a2 = (1,) + sa if len(sa) == 1 else sa
        b2 = sb + (1,) if len(sb) == 1 else sb
        k, n = a2[-1], b2[-1]
        ab, bb = a2[:-2], b2[:-2]
        fused = isinstance(op, graph_fused.MatMulBiasOp)
        out, residual = L.result_and_residual_locs(op, k) if fused else (L.result_loc(op.result), None)
        a, b_value = op.lhs, op.rhs
        if numel(bb) == 1:  # B is one matrix: fold A's batch into M
            m, batch, b_batch, a_bs = numel(a2[:-1]), 1, 1, 0
        elif numel(ab) == 1:
            m, batch, b_batch, a_bs = a2[-2], numel(bb), numel(bb), 0
        else:  # one matrix per batch on both sides (expanded where the batch dims broadcast both ways)
            batch_shape = tuple(L.shapes[op.result][:-2])
            m, batch = a2[-2], numel(batch_shape)
            b_batch, a_bs = batch, dim_mul(m, k)
            a = _batch_expanded(L, op.lhs, a2, batch_shape)
            b_value = _batch_expanded(L, op.rhs, b2, batch_shape)
        b = L.const_value(op.rhs) if b_value is op.rhs else None
        kw = {}
        if b is not None:
            kw["b_const"] = b.reshape(numel(bb), b2[-2], b2[-1])  # numel, not -1: B may be empty
        else:
            kw.update(b_value=b_value, b_strides=(n, 1, dim_mul(k, n) if b_batch != 1 else 0))
        if fused:
            bias = L.const_value(op.bias)
            if bias is None:
                raise UnsupportedOperatorError("graph.matmul_bias needs a constant bias on the CPU backend")
            kw.update(bias=bias, activation=activation_spelling(graph.activation_of(op)) or "none", residual=residual)
        L.emit_gemm(a=a, a_strides=(k, 1), m=m, k=k, n=n, out=out, batch=batch, a_bs=a_bs,
                    b_batch=b_batch, dtype=dtype, **kw)


PATTERNS = (LowerGemm, LowerMatmul)
