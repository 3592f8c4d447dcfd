"""Register-blocked GEMM: C[b] = A[b] @ Bpacked[b] (+ bias row) (then activation).

B is packed into panels of NR columns ([panel][k][NR], zero padded) — at compile
time for weights, by `pack_b_kernel` at run time otherwise. A tile of MR rows x
NR columns accumulates in MR*NR/VW vector registers with FMA; the epilogue adds
the bias and applies the activation while the tile is in registers. A is read
through (row, col) strides, so transposed A needs no copy. Work items are
(batch, row block, panel) triples.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects import func

from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder

# ctx field order shared by the lowering and the kernel
GEMM_FIELDS = ("a", "b", "c", "bias", "m", "n", "k", "a_rs", "a_cs",
               "a_bs", "b_bs", "c_bs", "mblocks", "npanels")


@dataclass(frozen=True)
class GemmSpec:
    width: int        # f32 lanes per vector
    nvec: int         # vectors per panel row: NR = nvec * width
    mr: int           # rows per register tile
    has_bias: bool
    activation: str   # "none" | "relu"

    @property
    def nr(self) -> int:
        return self.nvec * self.width

    @property
    def name(self) -> str:
        return f"gemm_{self.mr}x{self.nr}_w{self.width}_{'b' if self.has_bias else 'nb'}_{self.activation}"

    @staticmethod
    def for_target(width: int, num_registers: int, has_bias: bool, activation: str) -> "GemmSpec":
        nvec = 2
        mr = max(1, min(8, (num_registers - nvec - 1) // nvec))
        return GemmSpec(width, nvec, mr, has_bias, activation)


def pack_b(b: np.ndarray, nr: int) -> np.ndarray:
    """[..., K, N] -> [..., ceil(N/NR), K, NR] zero padded (compile-time packing)."""
    *batch, k, n = b.shape
    panels = -(-n // nr)
    padded = np.zeros((*batch, k, panels * nr), dtype=np.float32)
    padded[..., :n] = b
    return np.ascontiguousarray(padded.reshape(*batch, k, panels, nr).swapaxes(-3, -2))


def pad_bias(bias: np.ndarray, nr: int) -> np.ndarray:
    n = bias.shape[-1]
    out = np.zeros(-(-n // nr) * nr, dtype=np.float32)
    out[:n] = bias
    return out


def gemm_kernel(spec: GemmSpec) -> func.FuncOp:
    kb = KernelBuilder(spec.name)
    f = {name: kb.field(i) for i, name in enumerate(GEMM_FIELDS)}
    a, bp, c, bias = (kb.as_ptr(f[x]) for x in ("a", "b", "c", "bias"))
    w, nv, nr = spec.width, spec.nvec, spec.nr
    scratch = kb.scratch(w)
    per_batch = kb.mul(f["mblocks"], f["npanels"])

    with kb.loop(kb.begin, kb.end) as item:
        batch = kb.div(item.iv, per_batch)
        rest = kb.rem(item.iv, per_batch)
        mb = kb.div(rest, f["npanels"])
        panel = kb.rem(rest, f["npanels"])
        a_b = kb.mul(batch, f["a_bs"])
        b_off = kb.add(kb.mul(batch, f["b_bs"]), kb.mul(panel, kb.mul(f["k"], kb.const(nr))))
        c_b = kb.mul(batch, f["c_bs"])
        col0 = kb.mul(panel, kb.const(nr))
        ncols = kb.min(kb.const(nr), kb.sub(f["n"], col0))
        row0 = kb.mul(mb, kb.const(spec.mr))
        rows = kb.min(kb.const(spec.mr), kb.sub(f["m"], row0))

        def tile(mr: int, first_row):
            zero = kb.fconst(0.0, w)
            with kb.loop(0, f["k"], 1, carried=[zero] * (mr * nv)) as kl:
                bvecs = [kb.load(bp, kb.add(b_off, kb.add(kb.mul(kl.iv, kb.const(nr)), kb.const(v * w))), w)
                         for v in range(nv)]
                acc = list(kl.carried)
                for r in range(mr):
                    a_idx = kb.add(a_b, kb.add(kb.mul(kb.add(first_row, kb.const(r)), f["a_rs"]),
                                               kb.mul(kl.iv, f["a_cs"])))
                    av = kb.splat(kb.load(a, a_idx), w)
                    for v in range(nv):
                        acc[r * nv + v] = kb.fma(av, bvecs[v], acc[r * nv + v])
                kl.next = acc
            acc = kl.results
            for r in range(mr):
                c_row = kb.add(c_b, kb.add(kb.mul(kb.add(first_row, kb.const(r)), f["n"]), col0))
                for v in range(nv):
                    val = acc[r * nv + v]
                    if spec.has_bias:
                        val = kb.fadd(val, kb.load(bias, kb.add(col0, kb.const(v * w)), w))
                    if spec.activation == "relu":
                        val = kb.fmax(val, kb.fconst(0.0, w))
                    lanes = kb.sub(ncols, kb.const(v * w))
                    with kb.if_(kb.cmp("sge", lanes, kb.const(w))):
                        kb.store(val, c, kb.add(c_row, kb.const(v * w)))
                    with kb.if_(kb.cmp("slt", lanes, kb.const(w))):
                        with kb.if_(kb.cmp("sgt", lanes, kb.const(0))):
                            kb.partial_store(val, c, kb.add(c_row, kb.const(v * w)), lanes, w, scratch)

        full = kb.cmp("eq", rows, kb.const(spec.mr))
        with kb.if_(full):
            tile(spec.mr, row0)
        with kb.if_(kb.cmp("slt", rows, kb.const(spec.mr))):
            with kb.loop(0, rows) as rl:
                tile(1, kb.add(row0, rl.iv))
    return kb.finish()


PACK_FIELDS = ("b", "bp", "k", "n", "b_rs", "b_cs", "b_bs", "bp_bs", "npanels")


def pack_b_kernel(nr: int) -> func.FuncOp:
    """Run-time packing of a non-constant B (strided, so transposed B needs no copy)."""
    kb = KernelBuilder(f"pack_b_{nr}")
    f = {name: kb.field(i) for i, name in enumerate(PACK_FIELDS)}
    b, bp = kb.ptr_field(0), kb.ptr_field(1)
    zero = kb.fconst(0.0)
    with kb.loop(kb.begin, kb.end) as item:
        batch = kb.div(item.iv, f["npanels"])
        panel = kb.rem(item.iv, f["npanels"])
        src_b = kb.mul(batch, f["b_bs"])
        dst = kb.add(kb.mul(batch, f["bp_bs"]), kb.mul(panel, kb.mul(f["k"], kb.const(nr))))
        col0 = kb.mul(panel, kb.const(nr))
        ncols = kb.min(kb.const(nr), kb.sub(f["n"], col0))
        with kb.loop(0, f["k"]) as kl:
            drow = kb.add(dst, kb.mul(kl.iv, kb.const(nr)))
            with kb.loop(0, kb.const(nr)) as jl:
                kb.store(zero, bp, kb.add(drow, jl.iv))
            with kb.loop(0, ncols) as jl:
                src = kb.add(src_b, kb.add(kb.mul(kl.iv, f["b_rs"]), kb.mul(kb.add(col0, jl.iv), f["b_cs"])))
                kb.store(kb.load(b, src), bp, kb.add(drow, jl.iv))
    return kb.finish()
