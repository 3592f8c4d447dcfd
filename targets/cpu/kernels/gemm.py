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
from xdsl.dialects.builtin import i1

from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder
from pyflame_rt.targets.cpu.kernels.elementwise import activation_tag, epilogue as activation_epilogue

# FMA latency (4 cycles) x FMA ports (2): independent accumulators needed to keep the ports busy
MIN_ACCUMULATORS = 8
# packed A rows: the K slice's depth rounded up to 16 floats, plus 16 (rows 2 KB apart would
# all map to the same L1 sets)
A_ROW_PAD = 16
# a row block meeting at most this many B panels reads A in place (no pack)
DIRECT_A_MAX_PANELS = 2
# so does a GEMM this shallow: its rows are one or two cache lines, and copying them cost as much as
# the FMAs (SqueezeNet's expand convs at 2 threads, batch 8: K = 16 9-13% faster in place, K = 32 0-10%)
DIRECT_A_MAX_K = 32
# deepest K slice (GemmSpec.kc), measured on znver3 (32 KB L1, 512 KB L2): against OpenBLAS, kc 512
# halves the C reloads of kc 256; 576 (a 3x3 conv over 64 channels in one slice, K = 1152 / 2304 in
# 2 / 4) took ResNet-50's convs 1.5-2.5% below 512 at one thread; 768 and 1152 were no better
KC = 576
# floats per 64-byte cache line: one prefetch per line of A
LINE_FLOATS = 16
# B prefetch: a row tile fetches at most this many lines of the next panel. With fewer tiles
# (M of 1-32) the share would be a burst of up to a whole L1 that evicts the panel in use
# (the MLP at batch 1 and 8 lost 9-22%). A matrix-vector product (M = 1) is left to the hardware
# prefetcher: fetching the next panel's row alongside each k step cost the MLP 15% at batch 1
B_PREFETCH_MAX_LINES = 64
# ... and only while B is cold: larger than L2 (512 KB on znver3), or met by at most a few row blocks
# per image. A smaller B with many row blocks is reread from L2, and fetching the next panel into
# L1 only evicted the panel in use (ResNet-50's 128 -> 512 1x1 convs at batch 8: 9-10% faster
# without it, the 64 -> 64 3x3s 0-5%); MobileNetV2's 7x7 and 14x14 convs at batch 1 need it
B_PREFETCH_MIN_BYTES = 512 * 1024
B_PREFETCH_COLD_BLOCKS = 4

# a GEMM of at most this many multiply-adds (static shapes) runs one-row tiles: it takes
# microseconds either way, and the full kernel's remainder-row variants tripled its compile time
SMALL_GEMM_MACS = 16384

# ctx field order shared by the lowering and the kernel
GEMM_FIELDS = ("a", "b", "c", "bias", "m", "n", "k", "a_rs", "a_cs",
               "a_bs", "b_bs", "c_bs", "mblocks", "nblocks", "ncp", "npanels", "groups", "a_gs", "c_gs",
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
    activation: str   # "none" or a graph activation string
    unit_a_cs: bool = True  # A's column stride is 1 (not transposed): frees address registers
    bias_per_row: bool = False  # the bias has one value per row of C (per output channel of a conv)
    residual: bool = False  # add a tensor laid out like C (same strides and offsets) before the activation
    # measured on znver3 (32 KB L1, 512 KB L2) against OpenBLAS: a 144 x 512 A block (295 KB,
    # L2) halves the passes over B at N >= 2048
    kc: int = KC
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
        return (f"gemm_{self.mr}x{self.nr}_w{self.width}_{'b' if self.has_bias else 'nb'}"
                f"_{activation_tag(self.activation)}"
                f"_k{self.kc}m{self.mc_tiles}n{self.nc_panels}{'' if self.unit_a_cs else '_sa'}"
                f"{'_rb' if self.bias_per_row else ''}{'_res' if self.residual else ''}")

    @staticmethod
    def for_target(width: int, num_registers: int, has_bias: bool, activation: str,
                   unit_a_cs: bool = True, bias_per_row: bool = False, residual: bool = False,
                   small: bool = False) -> "GemmSpec":
        """The register tile for the target; `small` (a GEMM of at most SMALL_GEMM_MACS) takes
        one-row tiles: no remainder-row variants, a fraction of the code to compile."""
        nvec = 2
        mr = 1 if small else max(1, min(8, (num_registers - nvec - 1) // nvec))
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
    apack = kb.scratch(spec.mc * (spec.kc + A_ROW_PAD))  # per-thread stack: the packed A block
    zero = kb.fconst(0.0, w)
    # item = (batch * mblocks + mb) * nblocks + nb. The items of [begin, end) that share a row
    # block are done as one: its A block is packed once for all their panels.
    # the row tiles are split evenly among the mblocks row blocks (at most MC rows each: the
    # lowering makes mblocks >= ceil(M / MC)): blocks differ by at most one tile, so a 196-row
    # GEMM is 4 blocks of 48-52 rows, not 144 + 52, and threads finish together
    m_tiles = kb.ceil_div(f["m"], spec.mr)
    mblocks = kb.max(f["mblocks"], kb.const(1))
    # B is cold (worth the next-panel prefetch) when one batch's packed B exceeds L2 or few row
    # blocks reread it
    b_bytes = kb.mul(kb.mul(f["k"], f["npanels"]), kb.const(spec.nr * 4))
    b_cold = kb.or_(kb.cmp("sgt", b_bytes, kb.const(B_PREFETCH_MIN_BYTES)),
                    kb.cmp("sle", mblocks, kb.const(B_PREFETCH_COLD_BLOCKS)))

    def block_first_row(mb):
        return kb.mul(kb.div(kb.mul(mb, m_tiles), mblocks), kb.const(spec.mr))

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
        row_lo = block_first_row(mb)
        row_hi = kb.min(f["m"], block_first_row(kb.add(mb, kb.const(1))))
        full_hi = kb.add(row_lo, kb.mul(kb.div(kb.sub(row_hi, row_lo), kb.const(spec.mr)), kb.const(spec.mr)))
        p_lo = kb.mul(nb_lo, f["ncp"])
        p_hi = kb.min(f["npanels"], kb.mul(nb_hi, f["ncp"]))

        # A is read in place when that pays: no pack for a GEMM whose row block meets few panels
        # or whose K is shallow (the pack would cost as much as the FMAs: MobileNet's 1x1 convs
        # with N of 16-96, SqueezeNet's K = 16 expand convs)
        direct = kb.const(0, i1)
        if spec.unit_a_cs:
            direct = kb.and_(kb.cmp("eq", f["conv_c"], kb.const(0)),
                             kb.or_(kb.cmp("sle", kb.sub(p_hi, p_lo), kb.const(DIRECT_A_MAX_PANELS)),
                                    kb.cmp("sle", f["k"], kb.const(DIRECT_A_MAX_K))))
        a_ptr = kb.as_ptr(kb.select(direct, f["a"], kb.ptr_to_int(apack)))

        # K in equal slices of at most kc (rounded up to whole lines): K = 576 is 2 x 288, not
        # 512 + a 64-deep slice that reloads and stores all of C for 64 k steps. K = 0 is one empty
        # slice: its epilogue stores C = activation(0 + bias + residual), as for any K
        slices = kb.max(kb.const(1), kb.ceil_div(f["k"], spec.kc))
        depth = kb.max(kb.const(1),
                       kb.mul(kb.ceil_div(kb.ceil_div(f["k"], slices), LINE_FLOATS), kb.const(LINE_FLOATS)))
        with kb.loop(0, kb.max(f["k"], kb.const(1)), depth) as kl:
            k0 = kl.iv
            k1 = kb.min(f["k"], kb.add(k0, depth))
            first = kb.cmp("eq", k0, kb.const(0))
            last = kb.cmp("eq", k1, f["k"])
            # A[row, k] is a_ptr[a_origin + row * a_rs + k]: in place, or in the pack
            # (row-major; rows as far apart as the slice is deep, so a shallow K's block stays
            # within a few pages) whose first row is row_lo and first column k0
            pack_rs = kb.add(kb.mul(kb.ceil_div(kb.sub(k1, k0), A_ROW_PAD), kb.const(A_ROW_PAD)), kb.const(A_ROW_PAD))
            a_rs = kb.select(direct, f["a_rs"], pack_rs)
            a_origin = kb.select(direct, a_b, kb.sub(kb.const(0), kb.add(kb.mul(row_lo, pack_rs), k0)))

            def pack_conv():
                # the geometry fields exist only in a convolution's ctx: read them in this branch
                conv = {name: kb.field(len(GEMM_FIELDS) + i) for i, name in enumerate(CONV_A_FIELDS)}
                conv["c"] = f["conv_c"]
                _pack_conv_rows(kb, conv, a, a_b, apack, row_lo, row_hi, pack_rs, k0, k1, f["k"], w)

            def pack_matrix():
                with kb.loop(row_lo, row_hi) as pr:
                    dst = kb.sub(kb.mul(kb.sub(pr.iv, row_lo), pack_rs), k0)
                    src = kb.add(a_b, kb.mul(pr.iv, f["a_rs"]))
                    if spec.unit_a_cs:
                        kb.copy(a, src, apack, dst, k0, k1, w)
                    else:
                        with kb.loop(k0, k1) as pk:
                            v = kb.load(a, kb.add(src, kb.mul(pk.iv, f["a_cs"])))
                            kb.store(v, apack, kb.add(dst, pk.iv))

            kb.if_else(direct, lambda: None,
                       lambda: kb.if_else(kb.cmp("ne", f["conv_c"], kb.const(0)), pack_conv, pack_matrix))

            # each row tile's share of the next panel's B slice (the same for every panel)
            tiles = kb.ceil_div(kb.sub(row_hi, row_lo), spec.mr)
            b_share = kb.ceil_div(kb.sub(k1, k0), kb.max(tiles, kb.const(1)))
            b_prefetch_pays = kb.and_(kb.cmp("sle", b_share, kb.const(B_PREFETCH_MAX_LINES)), b_cold)

            with kb.loop(p_lo, p_hi) as pl:
                col0 = kb.mul(pl.iv, kb.const(nr))
                ncols = kb.min(kb.const(nr), kb.sub(f["n"], col0))
                b_off = kb.add(kb.mul(batch, f["b_bs"]), kb.mul(pl.iv, kb.mul(f["k"], kb.const(nr))))
                lanes = [kb.max(kb.const(0), kb.min(kb.const(w), kb.sub(ncols, kb.const(v * w))))
                         for v in range(nv)]
                masks = [kb.lane_mask(n, w) for n in lanes]
                next_b = kb.add(b_off, kb.mul(f["k"], kb.const(nr)))
                prefetch_b = kb.and_(kb.cmp("slt", kb.add(pl.iv, kb.const(1)), p_hi), b_prefetch_pays)

                def tile(mr: int, first_row, nv: int = nv):
                    """mr x (nv vectors) register tile over K slice [k0, k1): nv is the spec's
                    nvec, or one fewer for a last panel of exactly NR - w columns."""
                    c_rows = [kb.add(c_b, kb.add(kb.mul(kb.add(first_row, kb.const(r)), f["c_rs"]), col0))
                              for r in range(mr)]
                    a_rows = [kb.add(a_origin, kb.mul(kb.add(first_row, kb.const(r)), a_rs)) for r in range(mr)]

                    def k_step(k, acc):
                        """acc += A[rows, k] x B[k, panel]: one FMA per accumulator."""
                        brow = kb.add(b_off, kb.mul(k, kb.const(nr)))
                        bvecs = [kb.load(bp, kb.add(brow, kb.const(v * w)), w) for v in range(nv)]
                        acc = list(acc)
                        for r in range(mr):
                            av = kb.splat(kb.load(a_ptr, kb.add(a_rows[r], k)), w)
                            for v in range(nv):
                                acc[r * nv + v] = kb.fma(av, bvecs[v], acc[r * nv + v])
                        return acc

                    def partial_sums(full: bool):
                        return [kb.load(c, kb.add(c_rows[r], kb.const(v * w)), w) if full else
                                kb.masked_load(c, kb.add(c_rows[r], kb.const(v * w)), masks[v], w)
                                for r in range(mr) for v in range(nv)]

                    # A read in place streams from memory: fetch the next tile's rows meanwhile
                    with kb.if_(direct):
                        for r in range(mr):
                            nxt = kb.add(a_rows[r], kb.mul(kb.const(mr), a_rs))
                            with kb.loop(k0, k1, LINE_FLOATS) as pf:
                                kb.prefetch(a_ptr, kb.add(nxt, pf.iv))
                    # this tile's share of the next panel's B slice: a weight matrix larger than the
                    # caches streams from memory one panel slice at a time, and the hardware
                    # prefetcher restarts at every panel
                    share = kb.mul(kb.div(kb.sub(first_row, row_lo), kb.const(spec.mr)), b_share)
                    with kb.if_(prefetch_b):
                        with kb.loop(kb.add(k0, share), kb.min(k1, kb.add(kb.add(k0, share), b_share))) as bl:
                            kb.prefetch(bp, kb.add(next_b, kb.mul(bl.iv, kb.const(nr))))
                    # the next tile's C rows (to be written) and residual rows (to be read), one tile
                    # ahead of the epilogue: rows a row stride apart, which the hardware prefetcher
                    # does not follow (MobileNetV2's wide 1x1 convs waited on C's lines being fetched)
                    with kb.if_(last):
                        for r in range(mr):
                            row = kb.add(c_rows[r], kb.mul(kb.const(mr), f["c_rs"]))
                            for v in range(0, nr, LINE_FLOATS):
                                if spec.residual:
                                    kb.prefetch(res, kb.add(row, kb.const(v)))
                                kb.prefetch(c, kb.add(row, kb.const(v)), write=True)
                    # the partial sums of earlier K slices; none in the first (C is not read)
                    init = kb.if_else(first, lambda: [zero] * (mr * nv), lambda: kb.if_else(
                        kb.cmp("eq", lanes[nv - 1], kb.const(w)), lambda: partial_sums(True),
                        lambda: partial_sums(False)))
                    acc = _k_loop(kb, k0, k1, init, k_step, _chains(mr * nv, spec.mr * spec.nvec), zero)

                    fused = spec.has_bias or spec.residual or spec.activation != "none"

                    def finish(val, dst, v: int, row_bias, full: bool, fuse):
                        """C[dst] = activation(val + bias + residual) when fuse (an i1, or True after
                        the last K slice), else val. Full panels use plain loads and stores: masked
                        ones are slow on AMD even with every lane set (a ResNet residual epilogue
                        doubled its conv)."""
                        out = val
                        if fuse is not False:
                            if row_bias is not None:
                                out = kb.fadd(out, row_bias)
                            elif spec.has_bias:
                                out = kb.fadd(out, kb.load(bias, kb.add(col0, kb.const(v * w)), w))
                            if spec.residual:
                                out = kb.fadd(out, kb.load(res, dst, w) if full
                                              else kb.masked_load(res, dst, masks[v], w))
                            out = activation_epilogue(kb, spec.activation, out, w)
                            if fuse is not True and out is not val:
                                out = kb.select(fuse, out, val)
                        if full:
                            kb.store(out, c, dst)
                        else:
                            kb.masked_store(out, c, dst, masks[v], w)

                    def row_biases():
                        if not (spec.has_bias and spec.bias_per_row):
                            return [None] * mr
                        return [kb.splat(kb.load(bias, kb.add(bias_b, kb.add(first_row, kb.const(r)))), w)
                                for r in range(mr)]

                    def full_panel(fuse: bool):
                        """Straight-line stores of the whole tile: no per-vector checks."""
                        for r, row_bias in enumerate(row_biases() if fuse else [None] * mr):
                            for v in range(nv):
                                finish(acc[r * nv + v], kb.add(c_rows[r], kb.const(v * w)), v, row_bias, True, fuse)

                    def partial_panel():
                        """The last panel's tile, vector by vector with masks (one epilogue copy per
                        vector: an exp / erf activation's code is large)."""
                        for r, row_bias in enumerate(row_biases()):
                            for v in range(nv):
                                # a vector of the last panel may have no columns: masked loads and
                                # stores with an empty mask are slow on AMD, so skip it
                                with kb.if_(kb.cmp("sgt", lanes[v], kb.const(0))):
                                    finish(acc[r * nv + v], kb.add(c_rows[r], kb.const(v * w)), v, row_bias,
                                           False, last)

                    # every panel but the last is full: its tile is stored without per-vector checks,
                    # and the epilogue is chosen once per tile, not per vector
                    def whole_tile():
                        if fused:
                            kb.if_else(last, lambda: full_panel(True), lambda: full_panel(False))
                        else:
                            full_panel(False)

                    if nv < spec.nvec:  # a narrow tile's vectors are all full (see full_tiles)
                        whole_tile()
                    else:
                        kb.if_else(kb.cmp("eq", lanes[nv - 1], kb.const(w)), whole_tile, partial_panel)

                def full_tiles(nv: int):
                    with kb.loop(row_lo, full_hi, spec.mr) as tl:
                        tile(spec.mr, tl.iv, nv)

                # a last panel of exactly NR - w columns (N = 24, 40, 1000 with NR = 16: 8 columns) skips
                # its empty vector's FMAs: the main tiles get a narrower variant (of full vectors only,
                # so it needs no masked epilogue), the remainder rows do not, nor a small GEMM's
                # one-row tiles (kept to one variant for its compile time)
                if nv > 1 and spec.mr > 1:
                    kb.if_else(kb.cmp("eq", ncols, kb.const(nr - w)), lambda: full_tiles(nv - 1),
                               lambda: full_tiles(nv))
                else:
                    full_tiles(nv)
                rem = kb.sub(row_hi, full_hi)
                for mr in range(1, spec.mr):  # one specialized tile per possible remainder
                    with kb.if_(kb.cmp("eq", rem, kb.const(mr))):
                        tile(mr, full_hi)
    return kb.finish()


def _pack_conv_rows(kb: KernelBuilder, g: dict, x, x_off, apack, row_lo, row_hi, row_stride, k0, k1, k,
                    w: int) -> None:
    """Copy rows [row_lo, row_hi) x columns [k0, k1) of the implicit im2col A (see the module
    docstring) to apack, row-major with row stride row_stride. Column k = (tap row a, tap column b,
    channel): a tap row whose taps are all inside the input (dw 1) is one contiguous run of
    kw*C input elements; other tap rows go tap by tap, padding taps as zeros. A whole row (all of K
    in one slice) whose window lies inside the input is its kh runs, copied without per-tap-row
    checks: with few channels (a first conv's C = 3) those checks cost more than the copies. Runs
    are copied with `w`-vectors; the output pixel (image, oy, ox) of a row advances without divisions."""
    c = g["c"]
    run = kb.mul(g["kw"], c)
    kh = kb.div(k, run)
    row_step = kb.mul(kb.mul(g["dh"], g["wi"]), c)  # input elements from one tap row to the next
    whole_k = kb.and_(kb.cmp("eq", k0, kb.const(0)), kb.cmp("eq", k1, k))
    ta_lo, ta_hi = kb.div(k0, run), kb.add(kb.div(kb.sub(k1, kb.const(1)), run), kb.const(1))
    rest = kb.div(row_lo, g["ow"])
    start = [kb.rem(row_lo, g["ow"]), kb.rem(rest, g["oh"]), kb.div(rest, g["oh"])]
    with kb.loop(row_lo, row_hi, carried=start) as pr:
        ox, oy, image = pr.carried
        dst = kb.sub(kb.mul(kb.sub(pr.iv, row_lo), row_stride), k0)
        iy0 = kb.sub(kb.mul(oy, g["sh"]), g["ph"])
        ix0 = kb.sub(kb.mul(ox, g["sw"]), g["pw"])
        img_row0 = kb.mul(image, g["h"])
        cols_inside = kb.and_(kb.and_(kb.cmp("eq", g["dw"], kb.const(1)), kb.cmp("sge", ix0, kb.const(0))),
                              kb.cmp("sle", kb.add(ix0, g["kw"]), g["wi"]))
        rows_inside = kb.and_(kb.cmp("sge", iy0, kb.const(0)),
                              kb.cmp("slt", kb.add(iy0, kb.mul(kb.sub(kh, kb.const(1)), g["dh"])), g["h"]))

        def whole_window():
            src = kb.add(x_off, kb.mul(kb.add(kb.mul(kb.add(img_row0, iy0), g["wi"]), ix0), c))
            with kb.loop(0, kh) as ta:
                kb.copy(x, kb.add(src, kb.mul(ta.iv, row_step)), apack, kb.add(dst, kb.mul(ta.iv, run)),
                        kb.const(0), run, w)

        def tap_rows():
            with kb.loop(ta_lo, ta_hi) as ta:
                row_k = kb.mul(ta.iv, run)
                lo, hi = kb.max(k0, row_k), kb.min(k1, kb.add(row_k, run))
                row_ok, iy = kb.in_bounds(kb.add(iy0, kb.mul(ta.iv, g["dh"])), g["h"])
                pixel_row = kb.mul(kb.add(img_row0, iy), g["wi"])  # input pixel index of (image, iy, 0)

                def copy_run(pixel, run_k, lo, hi):
                    """Columns [lo, hi) from the input; column run_k is channel 0 of `pixel`."""
                    src = kb.add(x_off, kb.sub(kb.mul(kb.add(pixel_row, pixel), c), run_k))
                    kb.copy(x, src, apack, dst, lo, hi, w)

                def tap_by_tap():
                    tb_lo = kb.div(kb.sub(lo, row_k), c)
                    tb_hi = kb.add(kb.div(kb.sub(kb.sub(hi, row_k), kb.const(1)), c), kb.const(1))
                    with kb.loop(tb_lo, tb_hi) as tb:
                        tap_k = kb.add(row_k, kb.mul(tb.iv, c))
                        col_ok, ix = kb.in_bounds(kb.add(ix0, kb.mul(tb.iv, g["dw"])), g["wi"])
                        t_lo, t_hi = kb.max(lo, tap_k), kb.min(hi, kb.add(tap_k, c))
                        kb.if_else(kb.and_(row_ok, col_ok), lambda: copy_run(ix, tap_k, t_lo, t_hi),
                                   lambda: kb.fill(apack, dst, t_lo, t_hi, 0.0, w))

                kb.if_else(kb.and_(row_ok, cols_inside), lambda: copy_run(ix0, row_k, lo, hi), tap_by_tap)

        kb.if_else(kb.and_(whole_k, kb.and_(cols_inside, rows_inside)), whole_window, tap_rows)
        # next output pixel
        ox1 = kb.add(ox, kb.const(1))
        wrap = kb.cmp("eq", ox1, g["ow"])
        oy1 = kb.add(oy, kb.select(wrap, kb.const(1), kb.const(0)))
        wrap_y = kb.cmp("eq", oy1, g["oh"])
        pr.next = [kb.select(wrap, kb.const(0), ox1), kb.select(wrap_y, kb.const(0), oy1),
                   kb.add(image, kb.select(wrap_y, kb.const(1), kb.const(0)))]


def _chains(accumulators: int, budget: int) -> int:
    """Independent accumulator sets for a tile of `accumulators` vectors: enough to reach
    MIN_ACCUMULATORS, within the main tile's `budget` of accumulator registers."""
    return max(1, min(-(-MIN_ACCUMULATORS // accumulators), budget // accumulators))


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
