"""RNN / GRU / LSTM -> one GEMM for the input projection of every step and direction, then per
direction the step-loop kernel (kernels/recurrent.py) over the batch entries."""
from __future__ import annotations

import numpy as np
from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern

from pyflame_rt.dialects import graph_recurrent as gr
from pyflame_rt.dialects.symbolic import dim_mul
from pyflame_rt.errors import UnsupportedOperatorError
from pyflame_rt.targets.cpu.kernels.recurrent import RECURRENT_FIELDS, RecurrentSpec, recurrent_kernel
from pyflame_rt.targets.cpu.lowerings.pattern import GraphToKernelPattern

_CELLS = {gr.RNNOp: "rnn", gr.GRUOp: "gru", gr.LSTMOp: "lstm"}


def _constant(L, op: gr.RecurrentOp, name: str) -> np.ndarray | None:
    """Operand `name` (None when absent); the CPU kernels take the weights as constants only."""
    v = getattr(op, name, None)
    if v is None:
        return None
    arr = L.const_value(v)
    if arr is None:
        raise UnsupportedOperatorError(f"{op.name} on the CPU backend needs a constant {name.upper()}")
    return arr.astype(np.float32)


def _activations(op: gr.RecurrentOp, d: int) -> tuple:
    """Direction d's functions with the parameters each takes."""
    return tuple((name, (alpha, beta)[:gr.ACTIVATION_ARITY[name]]) for name, alpha, beta in op.direction_activations(d))


def _h_gate_recurrent_bias(bias: np.ndarray | None, d: int, h: int) -> np.ndarray:
    """R's h-gate bias of direction d (zeros without B): a linear-before-reset GRU adds it to H R_h^T."""
    return np.zeros(h, np.float32) if bias is None else np.ascontiguousarray(bias[d, -h:])


class LowerRecurrent(GraphToKernelPattern):
    float32_only = tuple(_CELLS)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gr.RNNOp | gr.GRUOp | gr.LSTMOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gr.RecurrentOp) -> None:
        cell = _CELLS[type(op)]
        w, r, bias, p = (_constant(L, op, n) for n in ("w", "r", "b", "p"))
        lbr = cell == "gru" and op.lbr
        dirs, h = op.num_directions, op.hidden
        gh = op.GATES * h
        x_shape = L.shapes[op.x]
        batch, seq = (x_shape[0], x_shape[1]) if op.is_batch_first else (x_shape[1], x_shape[0])
        # the input projection: X [steps * batch, input] @ W^T [input, dirs * gates * hidden] + the
        # biases that do not depend on the state (all but R's h-gate bias of a linear-before-reset GRU)
        x_bias = None
        if bias is not None:
            x_bias = bias[:, :gh] + bias[:, gh:] * (np.arange(gh) < 2 * h if lbr else 1)
        xp = L.new_buffer(dim_mul(dim_mul(seq, batch), dirs * gh * 4))
        L.emit_gemm(a=op.x, a_strides=(x_shape[2], 1), m=dim_mul(seq, batch), k=x_shape[2], n=dirs * gh, out=xp,
                    b_const=w.reshape(dirs * gh, -1).T[None],
                    bias=None if x_bias is None else x_bias.reshape(-1).astype(np.float32))
        writes_y = bool(op.y.uses)
        y = L.result_loc(op.y) if writes_y else L.null_buffer
        y_h = L.result_loc(op.y_h)
        y_c = L.result_loc(op.y_c) if cell == "lstm" else L.null_buffer
        if op.is_batch_first:  # X [batch, seq, ...], Y [batch, seq, dirs, hidden], states [batch, dirs, hidden]
            xp_ts, xp_bs = dirs * gh, dim_mul(seq, dirs * gh)
            y_ts, y_bs, h_bs = dirs * h, dim_mul(seq, dirs * h), dirs * h
        else:  # X [seq, batch, ...], Y [seq, dirs, batch, hidden], states [dirs, batch, hidden]
            xp_ts, xp_bs = dim_mul(batch, dirs * gh), dirs * gh
            y_ts, y_bs, h_bs = dim_mul(batch, dirs * h), h, h
        for d in range(dirs):
            reverse = op.direction.data == gr.Direction.REVERSE or d == 1
            spec = RecurrentSpec(
                cell, h, L.target.vector_width, _activations(op, d), op.clip_value, reverse,
                linear_before_reset=lbr, input_forget=cell == "lstm" and op.coupled,
                seq_lens=op.sequence_lens is not None, init_h=op.initial_h is not None,
                init_c=cell == "lstm" and op.initial_c is not None, peepholes=p is not None, writes_y=writes_y)
            state0 = d * h if op.is_batch_first else dim_mul(batch, d * h)  # also Y's first row
            fields = {
                "xp": xp, "rt": L.add_weight("recurrent_rt", np.ascontiguousarray(r[d].T)),
                "rb": L.add_weight("recurrent_rb", _h_gate_recurrent_bias(bias, d, h)) if lbr else L.null_buffer,
                "p": L.add_weight("peepholes", np.ascontiguousarray(p[d])) if p is not None else L.null_buffer,
                "seq_lens": L.loc(op.sequence_lens) if spec.seq_lens else L.null_buffer,
                "init_h": L.loc(op.initial_h) if spec.init_h else L.null_buffer,
                "init_c": L.loc(op.initial_c) if spec.init_c else L.null_buffer,
                "y": y, "y_h": y_h, "y_c": y_c, "seq": seq, "xp_ts": xp_ts, "xp_bs": xp_bs, "xp0": d * gh,
                "y_ts": y_ts, "y_bs": y_bs, "y0": state0,
                "h_bs": h_bs, "h0": state0}
            name = L.kernel(spec.name, lambda spec=spec: recurrent_kernel(spec))
            L.call(name, [fields[f] for f in RECURRENT_FIELDS], batch, work_per_item=dim_mul(seq, h * gh))


PATTERNS = (LowerRecurrent,)
