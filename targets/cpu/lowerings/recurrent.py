"""RNN / GRU / LSTM -> one GEMM for the input projection of every step and direction, R^T packed
in the GEMM's panels, then per direction the step-loop kernel (kernels/recurrent.py) over the
batch entries."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern

from pyflame_rt.dialects import graph_recurrent as gr
from pyflame_rt.dialects.symbolic import dim_mul
from pyflame_rt.targets.cpu.kernels.gemm import PACK_FIELDS, pack_b, pack_b_kernel
from pyflame_rt.targets.cpu.kernels.recurrent import (
    RECURRENT_FIELDS, RecurrentSpec, packed_columns, panel_vectors, recurrent_kernel, recurrent_matrices,
    rows_for_target)
from pyflame_rt.targets.cpu.lowerings.pattern import GraphToKernelPattern, node_label

_CELLS = {gr.RNNOp: "rnn", gr.GRUOp: "gru", gr.LSTMOp: "lstm"}


def _at(loc, elements: int):
    """The storage `elements` float32 values into loc's."""
    return replace(loc, offset=loc.offset + 4 * elements)


def _direction_row(L, v, arr: np.ndarray | None, d: int, name: str):
    """Direction d's row of a [dirs, n] operand: a weight of its own when constant, else a view."""
    if arr is not None:
        return L.add_weight(name, np.ascontiguousarray(arr[d], dtype=np.float32))
    return _at(L.loc(v), d * L.shapes[v][1])


def _strides(op: gr.RecurrentOp, batch, seq) -> dict:
    """The step kernel's element strides of xp's and Y's steps and entries and of the states' entries."""
    dirs, h = op.num_directions, op.hidden
    gh = op.GATES * h
    if op.is_batch_first:  # X [batch, seq, ...], Y [batch, seq, dirs, hidden], states [batch, dirs, hidden]
        return {"xp_ts": dirs * gh, "xp_bs": dim_mul(seq, dirs * gh), "y_ts": dirs * h, "y_bs": dim_mul(seq, dirs * h),
                "h_bs": dirs * h}
    # X [seq, batch, ...], Y [seq, dirs, batch, hidden], states [dirs, batch, hidden]
    return {"xp_ts": dim_mul(batch, dirs * gh), "xp_bs": dirs * gh, "y_ts": dim_mul(batch, dirs * h), "y_bs": h,
            "h_bs": h}


def _activations(op: gr.RecurrentOp, d: int) -> tuple:
    """Direction d's functions with the parameters each takes."""
    return tuple((name, (alpha, beta)[:gr.ACTIVATION_ARITY[name]]) for name, alpha, beta in op.direction_activations(d))


class LowerRecurrent(GraphToKernelPattern):
    """X's projection (one GEMM), R^T packed, then per direction the step kernel over the batch."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gr.RNNOp | gr.GRUOp | gr.LSTMOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gr.RecurrentOp) -> None:
        cell = _CELLS[type(op)]
        lbr = cell == "gru" and op.lbr
        dirs, h = op.num_directions, op.hidden
        gh = op.GATES * h
        x_shape = L.shapes[op.x]
        batch, seq = (x_shape[0], x_shape[1]) if op.is_batch_first else (x_shape[1], x_shape[0])
        w, r, bias, p = (L.const_value(v) if v is not None else None for v in (op.w, op.r, op.b, op.p))
        runtime_bias = op.b is not None and bias is None
        xp = self._input_projection(L, op, x_shape[2], gh, w, bias)
        rt = self._packed_r(L, op, r, cell, lbr)
        writes_y = bool(op.y.uses)
        y = L.result_loc(op.y) if writes_y else L.null_buffer
        y_h = L.result_loc(op.y_h)
        y_c = L.result_loc(op.y_c) if cell == "lstm" else L.null_buffer
        status, code = (L.check(f"{node_label(op)}: a sequence_lens value is outside [0, sequence length]")
                        if op.sequence_lens is not None else (L.null_buffer, 0))
        strides = _strides(op, batch, seq)
        for d in range(dirs):
            reverse = op.direction.data == gr.Direction.REVERSE or d == 1
            spec = RecurrentSpec(
                cell, h, L.target.vector_width, _activations(op, d), op.clip_value, reverse,
                linear_before_reset=lbr, input_forget=cell == "lstm" and op.coupled,
                seq_lens=op.sequence_lens is not None, init_h=op.initial_h is not None,
                init_c=cell == "lstm" and op.initial_c is not None, peepholes=op.p is not None, writes_y=writes_y,
                runtime_bias=runtime_bias, rows=rows_for_target(L.target.num_vector_registers))
            state0 = d * h if op.is_batch_first else dim_mul(batch, d * h)  # also Y's first row
            fields = {
                "xp": xp, "xb": _at(L.loc(op.b), d * 2 * gh) if runtime_bias else L.null_buffer,
                "rt": rt[0][d], "rt_h": rt[1][d] if len(rt) > 1 else L.null_buffer,
                "rb": self._h_gate_recurrent_bias(L, op, bias, d) if lbr else L.null_buffer,
                "p": L.null_buffer if op.p is None else _direction_row(L, op.p, p, d, "peepholes"),
                "seq_lens": L.loc(op.sequence_lens) if spec.seq_lens else L.null_buffer,
                "init_h": L.loc(op.initial_h) if spec.init_h else L.null_buffer,
                "init_c": L.loc(op.initial_c) if spec.init_c else L.null_buffer,
                "y": y, "y_h": y_h, "y_c": y_c, "seq": seq, "batch": batch, "xp0": d * gh, "y0": state0, "h0": state0,
                "status": status, "code": code, **strides}
            name = L.kernel(spec.name, lambda spec=spec: recurrent_kernel(spec))
            L.call(name, [fields[f] for f in RECURRENT_FIELDS], ("ceildiv", batch, spec.rows),
                   work_per_item=dim_mul(seq, spec.rows * h * gh))

    @staticmethod
    def _input_projection(L, op: gr.RecurrentOp, k: int, gh: int, w, bias):
        """xp [steps * batch, dirs * gates * hidden] = X @ W^T (+ the constant biases that do not
        depend on the state: all but R's h-gate bias of a linear-before-reset GRU), one GEMM."""
        dirs, x_shape = op.num_directions, L.shapes[op.x]
        m = dim_mul(x_shape[0], x_shape[1])
        xp = L.new_buffer(dim_mul(m, dirs * gh * 4))
        kw = dict(b_const=w.reshape(dirs * gh, k).T[None]) if w is not None else dict(b_value=op.w, b_strides=(1, k, 0))
        if bias is not None:
            keep_r = np.arange(gh) < 2 * op.hidden if isinstance(op, gr.GRUOp) and op.lbr else 1
            kw["bias"] = (bias[:, :gh] + bias[:, gh:] * keep_r).reshape(-1).astype(np.float32)
        L.emit_gemm(a=op.x, a_strides=(k, 1), m=m, k=k, n=dirs * gh, out=xp, **kw)
        return xp

    @staticmethod
    def _packed_r(L, op: gr.RecurrentOp, r: np.ndarray | None, cell: str, lbr: bool) -> list[list]:
        """Per matrix of recurrent_matrices, per direction: its R^T packed in panels as the GEMM packs
        B (at compile time when R is constant, else by the GEMM's pack kernel, reading R transposed)."""
        h, w, dirs = op.hidden, L.target.vector_width, op.num_directions
        matrices = []
        for lo, hi in recurrent_matrices(cell, lbr, h):
            nr = panel_vectors(hi - lo, w) * w
            if r is not None:
                matrices.append([L.add_weight("recurrent_rt", pack_b(r[d, lo:hi].T.astype(np.float32), nr))
                                 for d in range(dirs)])
                continue
            per_direction, npanels = h * packed_columns(hi - lo, w), -(-(hi - lo) // nr)
            packed = L.new_buffer(dirs * per_direction * 4)
            fields = {"b": _at(L.loc(op.r), lo * h), "bp": packed, "k": h, "n": hi - lo, "b_rs": 1, "b_cs": h,
                      "b_bs": op.GATES * h * h, "bp_bs": per_direction, "npanels": npanels}
            L.call(L.kernel(f"pack_b_{nr}", lambda nr=nr: pack_b_kernel(nr)), [fields[f] for f in PACK_FIELDS],
                   dirs * npanels)
            matrices.append([_at(packed, d * per_direction) for d in range(dirs)])
        return matrices

    @staticmethod
    def _h_gate_recurrent_bias(L, op: gr.RecurrentOp, bias, d: int):
        """R's h-gate bias of direction d (zeros without B): a linear-before-reset GRU adds it to H R_h^T."""
        h = op.hidden
        if op.b is None:
            return L.add_weight("recurrent_rb", np.zeros(h, np.float32))
        if bias is None:
            return _at(L.loc(op.b), (d + 1) * 6 * h - h)
        return L.add_weight("recurrent_rb", np.ascontiguousarray(bias[d, -h:].astype(np.float32)))


PATTERNS = (LowerRecurrent,)
