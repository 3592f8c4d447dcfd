"""Gemm / MatMul -> packed-B register-blocked GEMM kernels (see kernels/gemm.py)."""
from __future__ import annotations

import numpy as np
from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern

from pyflame_rt.dialects import graph, graph_fused
from pyflame_rt.dialects.symbolic import Dim, dim_mul, numel
from pyflame_rt.dtype import DType
from pyflame_rt.errors import UnsupportedOperatorError
from pyflame_rt.targets.cpu.kernels.elementwise import activation_spelling
from pyflame_rt.targets.cpu.kernels.matmul_rows import MATMUL_ROWS_FIELDS, MatMulRowsSpec, matmul_rows_kernel
from pyflame_rt.targets.cpu.lowerings.pattern import GraphToKernelPattern


def _row_bias(c: np.ndarray | None, n: Dim, beta: float) -> np.ndarray | None:
    """A constant C that is a row vector (or scalar) becomes the fused bias."""
    if c is None or not isinstance(n, int):
        return None
    if c.size == 1 or (c.shape[-1] == n and c.size == n):
        return np.broadcast_to(c.reshape(-1) * beta, (n,)).astype(np.float32)
    return None


def _require_operands(L, op, dtype: DType = DType.FLOAT32) -> None:
    bad = [L.dtype(v).value for v in op.operands if L.dtype(v) is not dtype]
    if bad:
        raise UnsupportedOperatorError(f"{op.name} on the CPU backend needs {dtype.value} operands, got {bad[0]}")


class LowerGemm(GraphToKernelPattern):
    """alpha folds into a constant B and beta into a row-vector C (the GEMM's bias); otherwise they
    scale elementwise after the GEMM: out * alpha, then C * beta + out. float64 runs the row-by-row
    kernel in double precision on transposed copies of A / B, then scales and adds C elementwise."""

    float32_only = (graph.GemmOp,)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: graph.GemmOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: graph.GemmOp) -> None:
        if L.dtype(op.result) is DType.FLOAT64:
            self._lower_double(L, op)
            return
        _require_operands(L, op)
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
                    activation="none" if add_c or scale_after else act or "none", **kw)
        if scale_after:
            L.emit_elementwise("scale", [op.result], out, out_shape, params=(alpha,), activation=None if add_c else act)
        if add_c:
            L.emit_elementwise("add" if beta == 1.0 else "scaled_add", [c_val, op.result], out, out_shape,
                               out_dtype=DType.FLOAT32, params=() if beta == 1.0 else (beta,), activation=act)

    def _lower_double(self, L, op: graph.GemmOp) -> None:
        _require_operands(L, op, DType.FLOAT64)
        alpha, beta = op.alpha.value.data, op.beta.value.data
        a = _row_major(L, op.a, op.trans_a.value.data)
        b = _row_major(L, op.b, op.trans_b.value.data)
        out, out_shape = L.result_loc(op.result), L.shapes[op.result]
        m, n = out_shape
        k = L.shapes[op.a][0 if op.trans_a.value.data else 1]
        emit_matmul_rows(L, a, b, out, batch=1, m=m, k=k, n=n, a_bs=0, b_bs=0, dtype=DType.FLOAT64)
        act = activation_spelling(graph.activation_of(op))
        if alpha != 1.0 or (act and op.c is None):  # the activation goes on the last elementwise op
            L.emit_elementwise("scale", [op.result], out, out_shape, params=(alpha,),
                               activation=None if op.c is not None else act)
        if op.c is not None:
            L.emit_elementwise("add" if beta == 1.0 else "scaled_add", [op.c, op.result], out, out_shape,
                               out_dtype=DType.FLOAT64, params=() if beta == 1.0 else (beta,), activation=act)


def _row_major(L, v, transposed: bool):
    """The location of matrix v, or (transposed) of a row-major copy of v's transpose."""
    if not transposed:
        return L.loc(v)
    rows, cols = L.shapes[v]
    copy = L.new_buffer(dim_mul(dim_mul(rows, cols), L.dtype(v).itemsize))
    L.emit_strided("copy", [L.loc(v)], (L.dtype(v),), [[1], [cols]], copy, (cols, rows), L.dtype(v))
    return copy


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
    """MatMulBias: the bias row, the residual and the activation go into the GEMM epilogue. float64
    runs the row-by-row kernel in double precision."""

    float32_only = (graph.MatMulOp, graph_fused.MatMulBiasOp)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: graph.MatMulOp | graph_fused.MatMulBiasOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: graph.MatMulOp | graph_fused.MatMulBiasOp) -> None:
        double = isinstance(op, graph.MatMulOp) and L.dtype(op.result) is DType.FLOAT64
        if not double:
            _require_operands(L, op)
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
        if double:
            emit_matmul_rows(L, L.loc(a), L.loc(b_value), out, batch=batch, m=m, k=k, n=n, a_bs=a_bs,
                             b_bs=dim_mul(k, n) if b_batch != 1 else 0, dtype=DType.FLOAT64)
            return
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
            kw.update(bias=bias.astype(np.float32), activation=activation_spelling(graph.activation_of(op)) or "none", residual=residual)
        L.emit_gemm(a=a, a_strides=(k, 1), m=m, k=k, n=n, out=out, batch=batch, a_bs=a_bs,
                    b_batch=b_batch, **kw)


def emit_matmul_rows(L, a, b, out, *, batch, m, k, n, a_bs, b_bs, dtype: DType) -> None:
    """out[batch, m, n] = a @ b (storage locations; a_bs / b_bs: batch strides, 0 = shared) with the
    row-by-row kernel: float64, which the float32 GEMM would narrow."""
    spec = MatMulRowsSpec(dtype, max(1, L.target.vector_width * 4 // dtype.itemsize))
    name = L.kernel(spec.name, lambda: matmul_rows_kernel(spec))
    f = {"a": a, "b": b, "c": out, "m": m, "n": n, "k": k, "a_bs": a_bs, "b_bs": b_bs}
    L.call(name, [f[x] for x in MATMUL_ROWS_FIELDS], dim_mul(batch, m), work_per_item=dim_mul(k, n))


PATTERNS = (LowerGemm, LowerMatmul)
