"""Register-blocked GEMM: C[b] = A[b] @ Bpacked[b] (+ bias) (+ residual) (then activation).

B is packed into panels of NR columns ([panel][k][NR], zero padded) — at compile
time for weights, by `pack_b_kernel` at run time otherwise. A tile of MR rows x
NR columns accumulates in MR*NR/VW vector registers with FMA; the epilogue adds
the bias (per column, or per row for convolutions), a residual tensor read at C's
own positions (a ResNet shortcut) and applies the activation while the tile is in
registers, after the last K slice only (earlier slices store partial sums). A is read through (row, col) strides, so
transposed A needs no copy. Batches may be grouped (grouped convolution): batch
index = image * groups + group, with A and C offset per image and per group.
Work items are (batch, row block, panel block) triples.

When the field conv_c (channels) is not 0, A is the implicit channels-last im2col of a KxK convolution's NHWC
input: row p = (image, oy, ox), column k = (tap a, tap b, channel) holds the input at
(oy*sh - ph + a*dh, ox*sw - pw + b*dw, channel), zero in the padding (geometry: the
CONV_A_FIELDS after GEMM_FIELDS). The A pack reads those C-runs from the input directly, so
no [P, K] column matrix is ever written. A run-time switch, not a spec variant: the pack is
a small part of the kernel, and every GEMM variant compiled twice would double its cost.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects import func

from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder

# FMA latency (4 cycles) x FMA ports (2): independent accumulators needed to keep the ports busy
MIN_ACCUMULATORS = 8

# ctx field order shared by the lowering and the kernel
GEMM_FIELDS = ("a", "b", "c", "bias", "m", "n", "k", "a_rs", "a_cs",
               "a_bs", "b_bs", "c_bs", "mblocks", "nblocks", "npanels", "groups", "a_gs", "c_gs",
               "residual", "c_rs", "conv_c")
# when conv_c != 0 (A is an NHWC convolution's input), its geometry follows GEMM_FIELDS
CONV_A_FIELDS = ("h", "wi", "oh", "ow", "kw", "sh", "sw", "dh", "dw", "ph", "pw")


@dataclass(frozen=True)
class GemmSpec:
    """A GEMM kernel's compile-time shape. Cache blocking (BLIS order): a work item owns
    MC = mr*mc_tiles rows x nc_panels panels of C; inside it, K is split into kc-deep
    slices so the B slice (kc x NR) stays in L1 across the row tiles and the A block
    (MC x kc) stays in L2 across the panels."""

    width: int        # f32 lanes per vector
    nvec: int         # vectors per panel row: NR = nvec * width
    mr: int           # rows per register tile
    has_bias: bool
    activation: str   # "none" or one of graph.ACTIVATIONS
    unit_a_cs: bool = True  # A's column stride is 1 (not transposed): frees address registers
    bias_per_row: bool = False  # the bias has one value per row of C (per output channel of a conv)
    residual: bool = False  # add a tensor laid out like C (same strides and offsets) before the activation
    # measured on znver3 (32 KB L1, 512 KB L2) against OpenBLAS: a 144 x 512 A block (295 KB,
    # L2) halves the passes over B at N >= 2048; kc 512 halves the C reloads of kc 256
    kc: int = 512
    mc_tiles: int = 24
    nc_panels: int = 16

    @property
    def nr(self) -> int:
        return self.nvec * self.width

    @property
    def mc(self) -> int:
        return self.mr * self.mc_tiles

    @property
    def name(self) -> str:
        return (f"gemm_{self.mr}x{self.nr}_w{self.width}_{'b' if self.has_bias else 'nb'}_{self.activation}"
                f"_k{self.kc}m{self.mc_tiles}n{self.nc_panels}{'' if self.unit_a_cs else '_sa'}"
                f"{'_rb' if self.bias_per_row else ''}{'_res' if self.residual else ''}")

    @staticmethod
    def for_target(width: int, num_registers: int, has_bias: bool, activation: str,
                   unit_a_cs: bool = True, bias_per_row: bool = False, residual: bool = False) -> "GemmSpec":
        nvec = 2
        mr = max(1, min(8, (num_registers - nvec - 1) // nvec))
        return GemmSpec(width, nvec, mr, has_bias, activation, unit_a_cs, bias_per_row, residual=residual)


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
    a, bp, c, bias, res = (kb.as_ptr(f[x]) for x in ("a", "b", "c", "bias", "residual"))
    w, nv, nr = spec.width, spec.nvec, spec.nr
    apack = kb.scratch(spec.mc * spec.kc)  # per-thread stack: the packed A block
    zero = kb.fconst(0.0, w)
    # item = (batch * mblocks + mb) * nblocks + nb. The items of [begin, end) that share a row
    # block are done as one: its A block is packed once for all their panels.
    # the mblocks = ceil(M / MC) row blocks get equal heights (in whole tiles, at most MC): a
    # 196-row GEMM is 102 + 94 rows, not 144 + 52, so two threads finish together
    mc = kb.div(kb.add(f["m"], kb.sub(f["mblocks"], kb.const(1))), kb.max(f["mblocks"], kb.const(1)))
    mc = kb.mul(kb.div(kb.add(mc, kb.const(spec.mr - 1)), kb.const(spec.mr)), kb.const(spec.mr))
    blk_lo = kb.div(kb.begin, f["nblocks"])
    blk_hi = kb.add(kb.div(kb.sub(kb.end, kb.const(1)), f["nblocks"]), kb.const(1))
    with kb.loop(blk_lo, blk_hi) as blk:
        first_item = kb.mul(blk.iv, f["nblocks"])
        nb_lo = kb.sub(kb.max(kb.begin, first_item), first_item)
        nb_hi = kb.sub(kb.min(kb.end, kb.add(first_item, f["nblocks"])), first_item)
        batch = kb.div(blk.iv, f["mblocks"])
        mb = kb.rem(blk.iv, f["mblocks"])
        image, group = kb.div(batch, f["groups"]), kb.rem(batch, f["groups"])
        a_b = kb.add(kb.mul(image, f["a_bs"]), kb.mul(group, f["a_gs"]))
        c_b = kb.add(kb.mul(image, f["c_bs"]), kb.mul(group, f["c_gs"]))
        bias_b = kb.mul(group, f["m"])  # per-row bias: this group's first row
        row_lo = kb.mul(mb, mc)
        row_hi = kb.min(f["m"], kb.add(row_lo, mc))
        full_hi = kb.add(row_lo, kb.mul(kb.div(kb.sub(row_hi, row_lo), kb.const(spec.mr)), kb.const(spec.mr)))
        p_lo = kb.mul(nb_lo, kb.const(spec.nc_panels))
        p_hi = kb.min(f["npanels"], kb.mul(nb_hi, kb.const(spec.nc_panels)))

        with kb.loop(0, f["k"], spec.kc) as kl:
            k0 = kl.iv
            k1 = kb.min(f["k"], kb.add(k0, kb.const(spec.kc)))
            first = kb.cmp("eq", k0, kb.const(0))
            last = kb.cmp("eq", k1, f["k"])

            def a_index(row, k):
                col = k if spec.unit_a_cs else kb.mul(k, f["a_cs"])
                return kb.add(a_b, kb.add(kb.mul(row, f["a_rs"]), col))

            # pack this A block tile by tile: [tile][k - k0][mr], so the micro-kernel reads A
            # with one pointer; a last partial tile packs only its valid rows
            with kb.loop(row_lo, row_hi, spec.mr) as tl:
                t_base = kb.mul(kb.sub(tl.iv, row_lo), kb.const(spec.kc))
                t_rows = kb.min(kb.const(spec.mr), kb.sub(row_hi, tl.iv))
                is_conv = kb.cmp("ne", f["conv_c"], kb.const(0))
                with kb.if_(is_conv):
                    conv = {name: kb.field(len(GEMM_FIELDS) + i) for i, name in enumerate(CONV_A_FIELDS)}
                    conv["c"] = f["conv_c"]
                    _pack_conv_rows(kb, conv, a, a_b, apack, tl.iv, t_rows, t_base, k0, k1, spec.mr)
                with kb.if_(kb.cmp("eq", f["conv_c"], kb.const(0))):
                    with kb.loop(k0, k1) as pk:
                        dst = kb.add(t_base, kb.mul(kb.sub(pk.iv, k0), kb.const(spec.mr)))
                        with kb.loop(0, t_rows) as pr:
                            v = kb.load(a, a_index(kb.add(tl.iv, pr.iv), pk.iv))
                            kb.store(v, apack, kb.add(dst, pr.iv))

            with kb.loop(p_lo, p_hi) as pl:
                col0 = kb.mul(pl.iv, kb.const(nr))
                ncols = kb.min(kb.const(nr), kb.sub(f["n"], col0))
                b_off = kb.add(kb.mul(batch, f["b_bs"]), kb.mul(pl.iv, kb.mul(f["k"], kb.const(nr))))
                lanes = [kb.max(kb.const(0), kb.min(kb.const(w), kb.sub(ncols, kb.const(v * w))))
                         for v in range(nv)]
                masks = [kb.lane_mask(n, w) for n in lanes]

                def tile(mr: int, first_row):
                    """mr x NR register tile over K slice [k0, k1), A read from the pack."""
                    c_rows = [kb.add(c_b, kb.add(kb.mul(kb.add(first_row, kb.const(r)), f["c_rs"]), col0))
                              for r in range(mr)]
                    init = []
                    for r in range(mr):
                        for v in range(nv):
                            prev = kb.masked_load(c, kb.add(c_rows[r], kb.const(v * w)), masks[v], w)
                            init.append(kb.select(first, zero, prev))
                    a_base = kb.mul(kb.sub(first_row, row_lo), kb.const(spec.kc))

                    def k_step(k, acc):
                        """acc += A[rows, k] x B[k, panel]: one FMA per accumulator."""
                        brow = kb.add(b_off, kb.mul(k, kb.const(nr)))
                        bvecs = [kb.load(bp, kb.add(brow, kb.const(v * w)), w) for v in range(nv)]
                        apos = kb.add(a_base, kb.mul(kb.sub(k, k0), kb.const(spec.mr)))
                        acc = list(acc)
                        for r in range(mr):
                            av = kb.splat(kb.load(apack, kb.add(apos, kb.const(r))), w)
                            for v in range(nv):
                                acc[r * nv + v] = kb.fma(av, bvecs[v], acc[r * nv + v])
                        return acc

                    acc = _k_loop(kb, k0, k1, init, k_step, max(1, MIN_ACCUMULATORS // len(init)), zero)
                    for r in range(mr):
                        if spec.has_bias and spec.bias_per_row:
                            row_bias = kb.splat(kb.load(bias, kb.add(bias_b, kb.add(first_row, kb.const(r)))), w)
                        for v in range(nv):
                            val = acc[r * nv + v]
                            out = val
                            if spec.has_bias and spec.bias_per_row:
                                out = kb.fadd(out, row_bias)
                            elif spec.has_bias:
                                out = kb.fadd(out, kb.load(bias, kb.add(col0, kb.const(v * w)), w))
                            dst = kb.add(c_rows[r], kb.const(v * w))
                            if spec.residual:
                                out = kb.fadd(out, kb.masked_load(res, dst, masks[v], w))
                            out = kb.activation(spec.activation, out, w)
                            if out is not val:  # the epilogue only applies after the last K slice
                                out = kb.select(last, out, val)
                            with kb.if_(kb.cmp("eq", lanes[v], kb.const(w))):
                                kb.store(out, c, dst)
                            with kb.if_(kb.cmp("slt", lanes[v], kb.const(w))):
                                kb.masked_store(out, c, dst, masks[v], w)

                with kb.loop(row_lo, full_hi, spec.mr) as tl:
                    tile(spec.mr, tl.iv)
                rem = kb.sub(row_hi, full_hi)
                for mr in range(1, spec.mr):  # one specialized tile per possible remainder
                    with kb.if_(kb.cmp("eq", rem, kb.const(mr))):
                        tile(mr, full_hi)
    return kb.finish()


def _pack_conv_rows(kb: KernelBuilder, g: dict, x, x_off, apack, first_row, rows, t_base, k0, k1, mr: int) -> None:
    """Pack rows [first_row, first_row + rows) x columns [k0, k1) of the implicit im2col A
    (see the module docstring) into a tile at apack[t_base + (k - k0) * mr + row]. The taps a
    K slice touches are a loop; a tap in the padding reads a clamped address and stores zeros."""
    c = g["c"]
    tap_lo, tap_hi = kb.div(k0, c), kb.add(kb.div(kb.sub(k1, kb.const(1)), c), kb.const(1))
    with kb.loop(0, rows) as pr:
        p = kb.add(first_row, pr.iv)
        ox, rest = kb.rem(p, g["ow"]), kb.div(p, g["ow"])
        oy, image = kb.rem(rest, g["oh"]), kb.div(rest, g["oh"])
        iy0 = kb.sub(kb.mul(oy, g["sh"]), g["ph"])
        ix0 = kb.sub(kb.mul(ox, g["sw"]), g["pw"])
        with kb.loop(tap_lo, tap_hi) as tp:
            tap_k = kb.mul(tp.iv, c)
            row_ok, iy = kb.in_bounds(kb.add(iy0, kb.mul(kb.div(tp.iv, g["kw"]), g["dh"])), g["h"])
            col_ok, ix = kb.in_bounds(kb.add(ix0, kb.mul(kb.rem(tp.iv, g["kw"]), g["dw"])), g["wi"])
            inside = kb.and_(row_ok, col_ok)
            # input element of column k: src + k
            src = kb.add(x_off, kb.sub(kb.mul(kb.add(kb.mul(kb.add(kb.mul(image, g["h"]), iy), g["wi"]), ix), c), tap_k))
            with kb.loop(kb.max(k0, tap_k), kb.min(k1, kb.add(tap_k, c))) as kk:
                v = kb.select(inside, kb.load(x, kb.add(src, kk.iv)), kb.fconst(0.0))
                kb.store(v, apack, kb.add(t_base, kb.add(kb.mul(kb.sub(kk.iv, k0), kb.const(mr)), pr.iv)))


def _k_loop(kb: KernelBuilder, k0, k1, init: list, k_step, chains: int, zero) -> list:
    """Accumulate k_step over [k0, k1). A tile with fewer than MIN_ACCUMULATORS vectors
    (the M=1 matrix-vector case, small remainder tiles) would wait on FMA latency, so
    `chains` independent accumulator sets take consecutive k and are summed at the end."""
    k_split = k0
    if chains > 1:
        k_split = kb.add(k0, kb.mul(kb.div(kb.sub(k1, k0), kb.const(chains)), kb.const(chains)))
        size = len(init)
        with kb.loop(k0, k_split, chains, carried=init + [zero] * (size * (chains - 1))) as kk:
            acc = list(kk.carried)
            for j in range(chains):
                acc[j * size:(j + 1) * size] = k_step(kb.add(kk.iv, kb.const(j)), acc[j * size:(j + 1) * size])
            kk.next = acc
        init = kk.results[:size]
        for j in range(1, chains):
            init = [kb.fadd(x, y) for x, y in zip(init, kk.results[j * size:(j + 1) * size])]
    with kb.loop(k_split, k1, 1, carried=init) as kk:  # all of K, or the last k % chains steps
        kk.next = k_step(kk.iv, kk.carried)
    return kk.results


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
