"""The step loop of a recurrent layer (RNN, GRU, LSTM) for one direction.

The input projection of every step (X W^T + biases) is one GEMM before this kernel (`xp`, rows of
gates * hidden per step and batch entry); what stays sequential runs here. Work item = `rows`
batch entries, which own their states for the whole sequence: per step, the recurrent projection
H R^T is a small GEMM (a matrix-vector product at one row) against R^T (`rt`: [hidden, gates *
hidden]) packed as the GEMM packs B (gemm.pack_b, pack_b_kernel): per panel of UNROLL vectors of
columns, one contiguous stream of R^T shared by the rows, rows x UNROLL independent FMA chains in
registers. Then per row the gate nonlinearities run fused in one vectorized pass over the hidden
units, which writes the new state (into `y_h` / `y_c`: the state buffers are the last-state
results) and Y's row. Biases that are
not constants are added here (`xb`), constant ones are in xp. The step count is the run-time
sequence length, or the entry's `sequence_lens` (one outside [0, seq] fails the run); Y's rows
past it are zero.

Offsets and strides are in elements: step t of entry b reads xp[xp0 + t * xp_ts + b * xp_bs] and
writes y[y0 + t * y_ts + b * y_bs]; its state is at h0 + b * h_bs of y_h, y_c, init_h and init_c
(ONNX's layouts 0 and 1 differ only in these).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from xdsl.dialects import func, llvm
from xdsl.dialects.builtin import i32, i64
from xdsl.ir import SSAValue

from pyflame_rt.dtype import DType
from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature
from pyflame_rt.targets.cpu.kernels import fast_math as fm
from pyflame_rt.targets.cpu.kernels.elementwise import ELEMENTWISE_OPS
from pyflame_rt.targets.cpu.kernels.typed import Typed

RECURRENT_BUFFERS = ("xp", "xb", "rt", "rt_h", "rb", "p", "seq_lens", "init_h", "init_c", "y", "y_h", "y_c", "status")
# status, code: where a sequence length outside [0, seq] stores the check's code (with seq_lens only)
RECURRENT_FIELDS = RECURRENT_BUFFERS + ("seq", "batch", "xp_ts", "xp_bs", "xp0", "y_ts", "y_bs", "y0", "h_bs", "h0", "code")
CELL_GATES = {"rnn": 1, "gru": 3, "lstm": 4}
# vectors of R^T's columns accumulated at once: FMA latency x ports independent chains
UNROLL = 4

Activation = tuple[str, tuple[float, ...]]  # a function's name and its parameters


@dataclass(frozen=True)
class RecurrentSpec:
    cell: str                  # "rnn", "gru" or "lstm"
    hidden: int
    width: int                 # f32 lanes per vector
    activations: tuple[Activation, ...]  # the cell's functions (f; f, g; f, g, h)
    clip: float | None
    reverse: bool
    linear_before_reset: bool = False  # GRU
    input_forget: bool = False         # LSTM: f = 1 - i
    seq_lens: bool = False
    init_h: bool = False
    init_c: bool = False
    peepholes: bool = False
    writes_y: bool = True
    runtime_bias: bool = False  # the biases are not in xp: add xb's (W's, then R's) per step
    rows: int = 1  # batch entries per work item, projected together (one pass over R^T per step)

    @property
    def gates(self) -> int:
        return CELL_GATES[self.cell]

    @property
    def name(self) -> str:
        digest = hashlib.sha1(repr(self).encode()).hexdigest()[:10]
        return (f"recurrent_{self.cell}_h{self.hidden}_w{self.width}_r{self.rows}{'_rev' if self.reverse else ''}"
                f"_{digest}")

    @property
    def signature(self) -> Signature:
        return Signature.of(RECURRENT_FIELDS, buffers=RECURRENT_BUFFERS)


def rows_for_target(num_registers: int) -> int:
    """Batch entries per work item: rows x UNROLL accumulators, UNROLL panel vectors and a broadcast
    fit the vector registers (at most 4 rows: a batch keeps a few work items for the threads)."""
    return max(1, min(4, (num_registers - UNROLL - 1) // UNROLL))


def panel_vectors(ncols: int, width: int) -> int:
    """Vectors per panel of a packed R^T of ncols columns: UNROLL, fewer for a narrower matrix."""
    return min(UNROLL, -(-ncols // width))


def recurrent_matrices(cell: str, linear_before_reset: bool, hidden: int) -> list[tuple[int, int]]:
    """The rows of R (columns of R^T) each packed matrix holds: a GRU without linear_before_reset
    projects r * H on R's h-gate rows apart, so they are a matrix of their own (`rt_h`)."""
    gh = CELL_GATES[cell] * hidden
    return [(0, 2 * hidden), (2 * hidden, gh)] if cell == "gru" and not linear_before_reset else [(0, gh)]


def packed_columns(ncols: int, width: int) -> int:
    """ncols rounded up to whole panels."""
    nr = panel_vectors(ncols, width) * width
    return -(-ncols // nr) * nr


def activate(t: Typed, activation: Activation, x: SSAValue) -> SSAValue:
    """A recurrent cell's function: the elementwise op of that name, or affine / scaled_tanh."""
    name, p = activation
    if name == "affine":
        return t.fma(x, t.const(p[0]), t.const(p[1]))
    if name == "scaled_tanh":
        return t.mul(t.const(p[0]), fm.tanh(t, t.mul(x, t.const(p[1]))))
    return ELEMENTWISE_OPS[name].body(t, [x], p)


def recurrent_kernel(spec: RecurrentSpec) -> func.FuncOp:
    return _StepEmitter(spec).emit()


class _StepEmitter:
    """Emits the kernel top-down: a work item's rows (`emit`), its steps (`_step`), the projection
    of all its rows (`_project`, `_panel`), then per active row the gate pass (`_each_row`, the
    cells' `_*_units`). While a row's gate code is emitted, `state`, `acc_row`, `x_row` and `y_row`
    are that row's offsets."""

    def __init__(self, spec: RecurrentSpec):
        self.spec = spec
        self.kb = KernelBuilder(spec.name, spec.signature)
        self.f = self.kb.fields
        self.h = spec.hidden
        self.gh = spec.gates * spec.hidden
        # a row's recurrent projection, and the padding columns of R^T's last panels
        self.acc_cols = max(lo + packed_columns(hi - lo, spec.width)
                            for lo, hi in recurrent_matrices(spec.cell, spec.linear_before_reset, self.h))

    def emit(self) -> func.FuncOp:
        kb, f, spec, mr = self.kb, self.f, self.spec, self.spec.rows
        self.acc = kb.scratch(mr * self.acc_cols)
        self.reset_h = kb.scratch(mr * self.h) if spec.cell == "gru" and not spec.linear_before_reset else None
        self.lengths = kb.scratch(mr, i64)
        last = kb.sub(f["batch"], kb.const(1))
        with kb.loop(kb.begin, kb.end) as item:
            first = kb.mul(item.iv, kb.const(mr))
            longest = kb.const(0)
            for r in range(mr):
                length = f["seq"]
                if spec.seq_lens:  # rows past the batch read the last entry's (and never step)
                    b = kb.min(kb.add(first, kb.const(r)), last)
                    length = self._checked_length(kb.cast(llvm.SExtOp, kb.load(f["seq_lens"], b, elem=i32), i64))
                kb.store(length, self.lengths, kb.const(r), elem=i64)
                longest = kb.max(longest, length)
            self._each_row(first, None, self._initial_state)
            with kb.loop(0, longest) as s:
                self._step(first, s.iv)
            if spec.writes_y:
                self._each_row(first, None, self._zero_padding)
        return kb.finish()

    def _each_row(self, first: SSAValue, s: SSAValue | None, body) -> None:
        """body() for each valid row of the work item (at step s: each row with a step s left), with
        the row's offsets set; a run-time loop over the rows."""
        kb, f, spec = self.kb, self.f, self.spec
        with kb.loop(0, spec.rows) as row:
            b = kb.add(first, row.iv)
            length = kb.load(self.lengths, row.iv, elem=i64)
            active = kb.cmp("slt", b, f["batch"])
            if s is not None:
                active = kb.and_(active, kb.cmp("slt", s, length))
            with kb.if_(active):
                self.b, self.length = b, length
                self.state = kb.add(f["h0"], kb.mul(b, f["h_bs"]))
                self.acc_row = kb.mul(row.iv, kb.const(self.acc_cols))
                self.reset_row = kb.mul(row.iv, kb.const(self.h))
                if s is not None:
                    t = kb.sub(kb.sub(length, kb.const(1)), s) if spec.reverse else s
                    self.x_row = kb.add(f["xp0"], kb.add(kb.mul(t, f["xp_ts"]), kb.mul(b, f["xp_bs"])))
                    self.y_row = kb.add(f["y0"], kb.add(kb.mul(t, f["y_ts"]), kb.mul(b, f["y_bs"])))
                body()

    def _step(self, first: SSAValue, s: SSAValue) -> None:
        kb, f, h = self.kb, self.f, self.h

        def hidden_state(r: SSAValue) -> tuple[SSAValue, SSAValue]:
            return f["y_h"], kb.add(f["h0"], kb.mul(kb.add(first, r), f["h_bs"]))

        if self.spec.cell == "gru" and not self.spec.linear_before_reset:
            # h~ reads (r * H) R_h^T: r first, then the h gate's columns
            self._project_rows(first, hidden_state, f["rt"], 0, 2 * h)
            self._each_row(first, s, self._gru_reset)
            self._project_rows(first, lambda r: (self.reset_h, kb.mul(r, kb.const(h))), f["rt_h"], 2 * h, h)
        else:
            self._project_rows(first, hidden_state, f["rt"], 0, self.gh)
        self._each_row(first, s, getattr(self, f"_{self.spec.cell}_units"))

    def _project_rows(self, first: SSAValue, vector, packed: SSAValue, col0: int, ncols: int) -> None:
        """The projection of the work item's rows, vector(r) (buffer, offset) row r's vector: all
        `rows` at once, or in the batch's last, partial work item one row at a time."""
        kb, mr = self.kb, self.spec.rows

        def all_rows() -> None:
            self._project([vector(kb.const(r)) for r in range(mr)], packed, col0, ncols, kb.const(0))

        if mr == 1:
            all_rows()
            return
        left = kb.sub(self.f["batch"], first)

        def each_row() -> None:
            with kb.loop(0, kb.min(left, kb.const(mr))) as r:
                self._project([vector(r.iv)], packed, col0, ncols, kb.mul(r.iv, kb.const(self.acc_cols)))

        kb.if_else(kb.cmp("sge", left, kb.const(mr)), all_rows, each_row)

    def _checked_length(self, given: SSAValue) -> SSAValue:
        """A batch entry's sequence_lens value; outside [0, seq] it flags the check (the run fails)
        and is clamped, so no step reads past X."""
        kb, f = self.kb, self.f
        with kb.if_(kb.or_(kb.cmp("slt", given, kb.const(0)), kb.cmp("sgt", given, f["seq"]))):
            kb.store(f["code"], f["status"], kb.const(0), elem=i64)
        return kb.min(kb.max(given, kb.const(0)), f["seq"])

    def _initial_state(self) -> None:
        """The given initial states, zeros without them or (as onnxruntime's last states) for an
        entry of length 0."""
        kb, f, spec = self.kb, self.f, self.spec
        states = [("y_h", "init_h", spec.init_h)] + ([("y_c", "init_c", spec.init_c)] if spec.cell == "lstm" else [])
        zero, h = kb.const(0), kb.const(self.h)
        for dst, src, given in states:
            def fill(dst=dst) -> None:
                kb.fill(f[dst], self.state, zero, h, 0.0, spec.width)

            def copy(dst=dst, src=src) -> None:
                kb.copy(f[src], self.state, f[dst], self.state, zero, h, spec.width)

            if given:
                kb.if_else(kb.cmp("sgt", self.length, zero), copy, fill)
            else:
                fill()

    def _zero_padding(self) -> None:
        """Y's rows past the row's length."""
        kb, f = self.kb, self.f
        with kb.loop(self.length, f["seq"]) as s:
            row = kb.add(f["y0"], kb.add(kb.mul(s.iv, f["y_ts"]), kb.mul(self.b, f["y_bs"])))
            kb.fill(f["y"], row, kb.const(0), kb.const(self.h), 0.0, self.spec.width)

    # ------------------------------------------------------------ recurrent projection
    def _project(self, vs: list[tuple[SSAValue, SSAValue]], packed: SSAValue, col0: int, ncols: int,
                 acc0: SSAValue) -> None:
        """acc[acc0 + row * acc_cols + col0 + j] = sum_k v_row[k] * R^T[k, j] for j < ncols, for the
        rows' vectors vs ((buffer, offset) each; R^T packed in panels: its padding columns land in acc
        past ncols), a panel at a time."""
        kb, nvec = self.kb, panel_vectors(ncols, self.spec.width)
        with kb.loop(0, -(-ncols // (nvec * self.spec.width))) as panel:
            self._panel(vs, packed, panel.iv, kb.add(acc0, kb.const(col0)), nvec)

    def _panel(self, vs: list[tuple[SSAValue, SSAValue]], packed: SSAValue, panel: SSAValue, col0: SSAValue,
               nvec: int) -> None:
        """One panel's nvec vectors of columns for every row: one K loop with rows x nvec independent
        accumulators, streaming the panel's contiguous [hidden, nvec * width] block once for all rows."""
        kb, w = self.kb, self.spec.width
        nr = nvec * w
        base = kb.mul(panel, kb.const(self.h * nr))
        with kb.loop(0, self.h, carried=[kb.fconst(0.0, w)] * (nvec * len(vs))) as k:
            row = kb.add(base, kb.mul(k.iv, kb.const(nr)))
            panel_row = [kb.load(packed, kb.add(row, kb.const(u * w)), w) for u in range(nvec)]
            k.next = []
            for r, (v, off) in enumerate(vs):
                vk = kb.splat(kb.load(v, kb.add(off, k.iv)), w)
                k.next += [kb.fma(vk, p, a) for p, a in zip(panel_row, k.carried[r * nvec:(r + 1) * nvec])]
        col = kb.add(col0, kb.mul(panel, kb.const(nr)))
        for i, a in enumerate(k.results):
            r, u = divmod(i, nvec)
            kb.store(a, self.acc, kb.add(col, kb.const(r * self.acc_cols + u * w)))

    # ------------------------------------------------------------ gates
    def _units(self, body) -> None:
        """body(t, j): the gate math of hidden units j.. (a vector of t's width, then single units)."""
        self.kb.strip_mined(self.kb.const(0), self.kb.const(self.h), self.spec.width,
                            lambda j, w: body(Typed(self.kb, DType.FLOAT32, w), j))

    def _pre(self, t: Typed, gate: int, j: SSAValue, recurrent: SSAValue | None = None) -> SSAValue:
        """A gate's input before clipping: the projected X plus the recurrent part (default: acc's),
        plus, with run-time biases, W's and (but in a linear-before-reset GRU's h gate) R's."""
        kb = self.kb
        col = kb.add(kb.const(gate * self.h), j)
        if recurrent is None:
            recurrent = t.load(self.acc, kb.add(self.acc_row, col))
        x = t.add(t.load(self.f["xp"], kb.add(self.x_row, col)), recurrent)
        if self.spec.runtime_bias:
            x = t.add(x, t.load(self.f["xb"], col))
            if not (self.spec.linear_before_reset and gate == 2):
                x = t.add(x, t.load(self.f["xb"], kb.add(kb.const(self.gh), col)))
        return x

    def _act(self, t: Typed, k: int, x: SSAValue, clipped: bool = True) -> SSAValue:
        """The cell's k-th function of a gate input, clipped (not the LSTM's cell state, as in
        onnxruntime)."""
        clip = self.spec.clip
        if clip is not None and clipped:
            x = ELEMENTWISE_OPS["clip"].body(t, [x], (-clip, clip))
        return activate(t, self.spec.activations[k], x)

    def _state(self, t: Typed, name: str, j: SSAValue) -> SSAValue:
        return t.load(self.f[name], self.kb.add(self.state, j))

    def _emit_h(self, j: SSAValue, h: SSAValue) -> None:
        self.kb.store(h, self.f["y_h"], self.kb.add(self.state, j))
        if self.spec.writes_y:
            self.kb.store(h, self.f["y"], self.kb.add(self.y_row, j))

    def _peephole(self, t: Typed, k: int, j: SSAValue, c: SSAValue, x: SSAValue) -> SSAValue:
        if not self.spec.peepholes:
            return x
        return t.fma(t.load(self.f["p"], self.kb.add(self.kb.const(k * self.h), j)), c, x)

    def _rnn_units(self) -> None:
        self._units(lambda t, j: self._emit_h(j, self._act(t, 0, self._pre(t, 0, j))))

    def _lstm_units(self) -> None:
        def unit(t: Typed, j: SSAValue) -> None:
            c_prev = self._state(t, "y_c", j)
            i = self._act(t, 0, self._peephole(t, 0, j, c_prev, self._pre(t, 0, j)))
            if self.spec.input_forget:
                f = t.sub(t.const(1.0), i)
            else:
                f = self._act(t, 0, self._peephole(t, 2, j, c_prev, self._pre(t, 2, j)))
            c = t.fma(f, c_prev, t.mul(i, self._act(t, 1, self._pre(t, 3, j))))
            o = self._act(t, 0, self._peephole(t, 1, j, c, self._pre(t, 1, j)))
            self.kb.store(c, self.f["y_c"], self.kb.add(self.state, j))
            self._emit_h(j, t.mul(o, self._act(t, 2, c, clipped=False)))

        self._units(unit)

    def _gru_reset(self) -> None:
        """r * H, for the h gate's projection (without linear_before_reset)."""
        def reset(t: Typed, j: SSAValue) -> None:
            r = self._act(t, 0, self._pre(t, 1, j))
            t.store(t.mul(r, self._state(t, "y_h", j)), self.reset_h, self.kb.add(self.reset_row, j))

        self._units(reset)

    def _gru_units(self) -> None:
        kb, h = self.kb, self.h

        def unit(t: Typed, j: SSAValue) -> None:
            z = self._act(t, 0, self._pre(t, 0, j))
            if self.spec.linear_before_reset:
                r = self._act(t, 0, self._pre(t, 1, j))
                col = kb.add(self.acc_row, kb.add(kb.const(2 * h), j))
                recurrent = t.mul(r, t.add(t.load(self.acc, col), t.load(self.f["rb"], j)))
                candidate = self._act(t, 1, self._pre(t, 2, j, recurrent))
            else:
                candidate = self._act(t, 1, self._pre(t, 2, j))
            h_prev = self._state(t, "y_h", j)
            # (1 - z) * h~ + z * H = h~ + z * (H - h~)
            self._emit_h(j, t.fma(z, t.sub(h_prev, candidate), candidate))

        self._units(unit)
