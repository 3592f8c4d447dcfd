"""Integer GEMM: C[m, n] (int32) = sum_k (A[m, k] - a_zp) * B[k, n], A uint8 (or int8), B int8 constant.

B is packed at compile time into panels of NR columns of 32-bit words, each word `group`
consecutive k of one column: [panel][K / group][NR]. A register tile of MR rows x NR columns
(the last M % MR rows: tiles of halving height) accumulates int32 vectors; per k group, a row's A
word (its `group` bytes) is broadcast and multiplied with the panel row:

- VNNI (AVX-512 VNNI, 16 lanes; AVX-VNNI, 8): `vpdpbusd` adds the four u8 x s8 products of each
  lane to the accumulator; words are 4 bytes.
- AVX2: `vpmaddwd` of widened words: A bytes zero-extended, B stored sign-extended to 16 bits at
  compile time, words of 2 k; each lane adds two exact products (no `vpmaddubsw` s16 saturation).
- AMX (uint8 A read in rows, K a multiple of AMX_K): a 32 x 32 register tile is 2 x 2 C tiles
  (kernels/amx.py), `tdpbusd` of two A tiles (16 rows x 64 k, read in place) by two B tiles (16
  words of the VNNI panel rows, 64 k x 16 columns, read at the panel's row stride); the sums go
  through a stack tile into the vector epilogue. The last rows short of a register tile take the
  AVX-512 VNNI register tiles (`vector_rows`, then halving heights).

A convolution (`Int8GemmSpec.conv`) reads its A rows in place (an implicit im2col): row p is
output pixel (image, oy, ox) of a padded NHWC input whose channels are a multiple of 4, and its
K = KH x KW x C bytes are the C-runs of its window's taps, so the k loop runs over taps, then the
tap's words (CONV_FIELDS, in A words); no column matrix is written.

The zero point of A (a run-time value: DynamicQuantizeLinear's) is taken out in the epilogue as
a_zp * colsum(B), colsum computed at packing time; B's zero point is 0 (symmetric weights).
An int8 A (`signed_a`) is read as the uint8 A xor 0x80 = A + 128, so its zero point is a_zp + 128
(the caller's: folded into the column sums of a requantizing GEMM).
The epilogue stores C as int32, as 8-bit requantized (`requant`), or as float32 dequantized
(`dequant`: the sums x a_scale x b_scale[column] + bias[column], onnxruntime's MatMulIntegerToFloat,
then a fused activation).
Work items are (block of `pblock` panels, row tile) pairs (`panel_block`: a block's packed B fits
half of L2; `work_items`), ordered by block: every row tile meets one block's panels, its A rows
staying in L1, before the next block, so B is read from memory once however many row tiles
there are.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects import func, llvm
from xdsl.dialects.builtin import IntegerType, f32, i32

from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature, vec
from pyflame_rt.targets.cpu.kernels.amx import TILE_ROWS, amx, load_tile_config
from pyflame_rt.targets.cpu.kernels.elementwise import activation_tag, epilogue as activation_epilogue

i8, i16 = IntegerType(8), IntegerType(16)

INT8_GEMM_FIELDS = ("a", "b", "c", "colsum", "a_zp", "m", "n", "kg", "a_rs", "c_rs", "npanels", "pblock")
INT8_GEMM_BUFFERS = ("a", "b", "c", "colsum", "a_zp")
# after INT8_GEMM_FIELDS in a requantizing kernel: per-column float32 multipliers (a_scale x
# b_scale / c_scale, padded like colsum), C's zero point and storage range
REQUANT_FIELDS = ("multiplier", "c_zp", "c_min", "c_max")
# after INT8_GEMM_FIELDS in a dequantizing kernel (C float32): A's scale (a run-time scalar), B's
# scale per column and the bias, both padded like colsum
DEQUANT_FIELDS = ("a_scale", "b_scale", "bias")
# after those (and the epilogue's) in a convolution's kernel (A words: `group` bytes): the window
# (kh x kw taps of cw words each, tap rows tap_y and columns tap_x apart), the output's oh x ow
# pixels per image, and where a pixel's window starts (image, output row and output column
# strides); a_rs is unused
CONV_FIELDS = ("kh", "kw", "cw", "tap_y", "tap_x", "oh", "ow", "img_stride", "y_stride", "x_stride")
# packed B bytes of one panel block: half of a 512 KB L2 (the rest for A's rows and C), as the
# float32 GEMM assumes (kernels/gemm.py)
B_BLOCK_BYTES = 256 * 1024
# x + 1.5 * 2**23 holds an integral |x| < 2**22 in its low mantissa bits, two's complement: its
# low byte is x as a byte (no float-to-int conversion: LLVM scalarizes the saturating ones)
BYTE_MAGIC = 1.5 * 2 ** 23
# what an int8 A (Int8GemmSpec.signed_a) adds to each byte, and so to its zero point
A_OFFSET = 128
# the dot-product instruction set, best first: (name, required features, int32 lanes, k per word)
DOT_PRODUCTS = (("amxint8", ("amx-int8", "amx-tile", "avx512vnni", "avx512f"), 16, 4),
                ("avx512vnni", ("avx512vnni", "avx512f"), 16, 4), ("avxvnni", ("avxvnni",), 8, 4),
                ("avx2", ("avx2",), 8, 2))
AMX_K = 64  # k per A tile row (its 64 bytes)
# rows of a vector register tile by its int32 lanes: 16-lane ones 8 rows x 2 vectors, 16 of the 32
# registers accumulating; 8-lane ones 4 rows within 16 registers
VECTOR_ROWS = {16: 8, 8: 4}


@dataclass(frozen=True)
class Int8GemmSpec:
    dot: str          # a DOT_PRODUCTS name
    mr: int = 4       # rows per register tile
    nvec: int = 2     # vectors per panel row
    requant: bool = False  # C is 8-bit: requantized in the epilogue (REQUANT_FIELDS), else int32
    dequant: bool = False  # C is float32: sums x a_scale x b_scale + bias (DEQUANT_FIELDS)
    activation: str = "none"  # a dequantized C's activation (activation_spelling)
    signed_a: bool = False  # A is int8, read as uint8 A + 128 (A_OFFSET)
    conv: bool = False  # A is a convolution's NHWC input, read as its im2col rows (CONV_FIELDS)

    @property
    def width(self) -> int:
        return next(w for name, _, w, _ in DOT_PRODUCTS if name == self.dot)

    @property
    def group(self) -> int:
        """k values per 32-bit word of packed B (and per A load)."""
        return next(g for name, _, _, g in DOT_PRODUCTS if name == self.dot)

    @property
    def nr(self) -> int:
        return self.nvec * self.width

    @property
    def tiles(self) -> bool:
        """Full register tiles are multiplied by AMX tiles."""
        return self.dot == "amxint8"

    @property
    def vector_rows(self) -> int:
        """Rows of the tallest vector register tile: the last rows short of an AMX tile run in these."""
        return min(self.mr, VECTOR_ROWS[self.width])

    @property
    def name(self) -> str:
        epilogue = "_rq" if self.requant else f"_dq_{activation_tag(self.activation)}" if self.dequant else ""
        return (f"gemm_{'s8' if self.signed_a else 'u8'}s8_{self.dot}_{self.mr}x{self.nr}{epilogue}"
                f"{'_conv' if self.conv else ''}")

    @property
    def signature(self) -> Signature:
        epilogue, buffers = ((REQUANT_FIELDS, ("multiplier",)) if self.requant else
                             (DEQUANT_FIELDS, DEQUANT_FIELDS) if self.dequant else ((), ()))
        return Signature.of(INT8_GEMM_FIELDS + epilogue + (CONV_FIELDS if self.conv else ()),
                            buffers=INT8_GEMM_BUFFERS + buffers)

    @staticmethod
    def for_features(features, requant: bool = False, signed_a: bool = False, conv: bool = False,
                     dequant: bool = False, k: int = 0, activation: str = "none") -> "Int8GemmSpec | None":
        """The best dot product the target's features allow, or None (no int8 kernel). AMX tiles
        need a uint8 A read in rows (no convolution) and its K (`k`) a positive multiple of AMX_K."""
        have = set(features)
        amx_fits = k > 0 and k % AMX_K == 0 and not signed_a and not conv
        dot = next((d for d in DOT_PRODUCTS if have.issuperset(d[1]) and (d[0] != "amxint8" or amx_fits)), None)
        if dot is None:
            return None
        mr = 2 * TILE_ROWS if dot[0] == "amxint8" else VECTOR_ROWS[dot[2]]  # AMX: 2 x 2 C tiles
        return Int8GemmSpec(dot[0], mr=mr, requant=requant, signed_a=signed_a, conv=conv, dequant=dequant,
                            activation=activation)


def pack_int8_b(b: np.ndarray, spec: Int8GemmSpec) -> tuple[np.ndarray, np.ndarray]:
    """int8 [K, N] (K a multiple of the group) -> (packed words [panels, K / group, NR] as int32,
    column sums [panels * NR] int32), zero padded."""
    k, n = b.shape
    g, nr = spec.group, spec.nr
    panels = -(-n // nr)
    padded = np.zeros((k, panels * nr), np.int8 if g == 4 else np.int16)
    padded[:, :n] = b
    words = padded.reshape(k // g, g, panels, nr).transpose(2, 0, 3, 1)  # [panel, k / g, NR, g]
    colsum = padded.sum(axis=0, dtype=np.int32)
    return np.ascontiguousarray(words).view(np.int32).reshape(panels, k // g, nr), colsum


def panel_block(kg: int, npanels: int, spec: Int8GemmSpec) -> int:
    """Panels per block: as many as fit B_BLOCK_BYTES (at least one), spread evenly over the blocks
    that takes, so that work items (a row tile by a block) are of one size but for the last block."""
    fit = max(1, B_BLOCK_BYTES // (kg * spec.nr * 4))
    blocks = -(-npanels // fit)
    return -(-npanels // blocks)


def work_items(m, npanels: int, pblock: int, spec: Int8GemmSpec) -> tuple:
    """The launch's work items (a Dim expression of M): row tiles x panel blocks."""
    return ("mul", ("ceildiv", m, spec.mr), -(-npanels // pblock))


def int8_gemm_kernel(spec: Int8GemmSpec) -> func.FuncOp:
    return _Int8GemmEmitter(spec).emit()


class _Int8GemmEmitter:
    def __init__(self, spec: Int8GemmSpec):
        self.spec = spec
        self.kb = KernelBuilder(spec.name, spec.signature)
        self.f = self.kb.fields
        self.zero = self.kb.vconst(0, i32, spec.width)
        if spec.tiles:
            self.ctile = self.kb.scratch(spec.mr * spec.nr, i32)  # the register tile, stored by the C tiles
            load_tile_config(self.kb)

    def emit(self) -> func.FuncOp:
        kb, f, mr = self.kb, self.f, self.spec.mr
        a_zp = kb.cast(llvm.ZExtOp, kb.load(f["a_zp"], kb.const(0), elem=i8), i32)
        rtiles = kb.div(kb.add(f["m"], kb.const(mr - 1)), kb.const(mr))
        with kb.loop(kb.begin, kb.end) as item:
            # item = (block, row tile): the tile meets each of the block's panels in turn (the last
            # block may hold fewer)
            first = kb.mul(kb.div(item.iv, rtiles), f["pblock"])
            panels = (first, kb.min(kb.add(first, f["pblock"]), f["npanels"]))
            r0 = kb.mul(kb.rem(item.iv, rtiles), kb.const(mr))
            rows = kb.min(kb.const(mr), kb.sub(f["m"], r0))
            kb.if_else(kb.cmp("eq", rows, kb.const(mr)), lambda: self._tiles(r0, mr, panels, a_zp),
                       lambda: self._remainder_rows(r0, rows, panels, a_zp))
        if self.spec.tiles:
            amx(kb, "tilerelease")
        return kb.finish()

    def _remainder_rows(self, r0, rows, panels, a_zp) -> None:
        """The last row tile's rows < MR in vector register tiles, so a panel is streamed once per
        tile, not once per row: whole ones of `vector_rows` (an AMX row tile is taller), then tiles
        of the powers of two below that, largest first, each where the rows left fit it (the binary
        digits of what is left)."""
        kb, top = self.kb, self.spec.vector_rows
        done = kb.const(0)
        if top < self.spec.mr:
            done = kb.mul(kb.div(rows, kb.const(top)), kb.const(top))
            with kb.loop(r0, kb.add(r0, done), top) as t:
                self._tiles(t.iv, top, panels, a_zp)
        for height in (1 << b for b in reversed(range((top - 1).bit_length()))):
            fits = kb.cmp("sge", kb.sub(rows, done), kb.const(height))
            with kb.if_(fits):
                self._tiles(kb.add(r0, done), height, panels, a_zp)
            done = kb.select(fits, kb.add(done, kb.const(height)), done)

    def _tiles(self, r0, rows: int, panels, a_zp) -> None:
        """Rows r0 .. r0 + rows - 1 by each panel in [panels[0], panels[1])."""
        kb, f = self.kb, self.f
        if self.spec.tiles and rows == self.spec.mr:
            with kb.loop(*panels) as panel:
                self._amx_tile(r0, panel.iv, a_zp)
            return
        if self.spec.conv:
            a_rows = self._window_starts(r0, rows)
        else:
            a_rows = [kb.mul(kb.add(r0, kb.const(r)), f["a_rs"]) for r in range(rows)]
        with kb.loop(*panels) as panel:
            self._tile(r0, panel.iv, a_rows, a_zp)

    def _tile(self, r0, panel, a_rows, a_zp) -> None:
        """The register tile of rows r0 .. (A words of each row's k = 0 at a_rows) by one panel."""
        kb, f, spec = self.kb, self.f, self.spec
        b_panel = kb.mul(panel, kb.mul(f["kg"], kb.const(spec.nr)))
        zeros = [self.zero] * (len(a_rows) * spec.nvec)
        if not spec.conv:
            with kb.loop(0, f["kg"], carried=zeros) as kl:
                kl.next = self._k_step(b_panel, kl.iv, a_rows, kl.iv, kl.carried)
            self._store(r0, panel, len(a_rows), kl.results, a_zp)
            return
        with kb.loop(0, f["kh"], carried=zeros) as ky:
            with kb.loop(0, f["kw"], carried=ky.carried) as kx:
                tap = kb.add(kb.mul(ky.iv, f["tap_y"]), kb.mul(kx.iv, f["tap_x"]))
                taps = [kb.add(start, tap) for start in a_rows]  # a_rows: the windows' starts
                k0 = kb.mul(kb.add(kb.mul(ky.iv, f["kw"]), kx.iv), f["cw"])
                with kb.loop(0, f["cw"], carried=kx.carried) as kc:
                    kc.next = self._k_step(b_panel, kb.add(k0, kc.iv), taps, kc.iv, kc.carried)
                kx.next = kc.results
            ky.next = kx.results
        self._store(r0, panel, len(a_rows), ky.results, a_zp)

    def _amx_tile(self, r0, panel, a_zp) -> None:
        """The register tile's rows from r0 x the panel: 2 x 2 C tiles over K, through ctile into
        the epilogue row by row."""
        kb, f, spec = self.kb, self.f, self.spec
        w, nr = spec.width, spec.nr
        for c in range(4):
            amx(kb, "tilezero", c)
        b_panel = kb.mul(panel, kb.mul(f["kg"], kb.const(nr)))
        a_stride, b_stride = kb.mul(f["a_rs"], kb.const(4)), kb.const(nr * 4)
        with kb.loop(0, f["kg"], AMX_K // spec.group) as ch:
            for i in range(2):
                a_tile = kb.add(kb.mul(kb.add(r0, kb.const(i * TILE_ROWS)), f["a_rs"]), ch.iv)
                amx(kb, "tileloadd64", 4 + i, kb.gep(f["a"], a_tile, i32), a_stride)
            for j in range(2):
                b_tile = kb.add(b_panel, kb.add(kb.mul(ch.iv, kb.const(nr)), kb.const(j * w)))
                amx(kb, "tileloadd64", 6 + j, kb.gep(f["b"], b_tile, i32), b_stride)
            for i in range(2):
                for j in range(2):
                    amx(kb, "tdpbusd", 2 * i + j, 4 + i, 6 + j)
        for i in range(2):
            for j in range(2):
                amx(kb, "tilestored64", 2 * i + j, kb.gep(self.ctile, kb.const(i * TILE_ROWS * nr + j * w), i32),
                    kb.const(nr * 4))
        with kb.loop(0, spec.mr) as r:  # one row's epilogue in a loop: a 32-row unrolled one compiles slowly
            row = kb.mul(r.iv, kb.const(nr))
            acc = [kb.load(self.ctile, kb.add(row, kb.const(v * w)), w, elem=i32) for v in range(spec.nvec)]
            self._store(kb.add(r0, r.iv), panel, 1, acc, a_zp)

    def _k_step(self, b_panel, k, a_rows, a_word, acc) -> list:
        """The accumulators after k group `k`: each row's A word a_rows[r] + a_word times B's row k."""
        kb, spec = self.kb, self.spec
        w = spec.width
        brow = kb.add(b_panel, kb.mul(k, kb.const(spec.nr)))
        bvecs = [kb.load(self.f["b"], kb.add(brow, kb.const(v * w)), w, elem=i32) for v in range(spec.nvec)]
        acc = list(acc)
        for r, row in enumerate(a_rows):
            a = kb.splat(self._a_word(kb.add(row, a_word)), w)
            for v in range(spec.nvec):
                acc[r * spec.nvec + v] = self._dot(acc[r * spec.nvec + v], a, bvecs[v])
        return acc

    def _window_starts(self, r0, rows: int) -> list:
        """A word offsets of the windows of output pixels r0 .. r0 + rows - 1: the first pixel's
        (image, oy, ox) by division, the next ones by stepping along the output rows."""
        kb, f = self.kb, self.f
        ohw = kb.mul(f["oh"], f["ow"])
        image, pixel = kb.div(r0, ohw), kb.rem(r0, ohw)
        oy, ox = kb.div(pixel, f["ow"]), kb.rem(pixel, f["ow"])
        starts = []
        for r in range(rows):
            if r:
                ox = kb.add(ox, kb.const(1))
                next_row = kb.cmp("eq", ox, f["ow"])
                ox = kb.select(next_row, kb.const(0), ox)
                oy = kb.select(next_row, kb.add(oy, kb.const(1)), oy)
                next_image = kb.cmp("eq", oy, f["oh"])
                oy = kb.select(next_image, kb.const(0), oy)
                image = kb.select(next_image, kb.add(image, kb.const(1)), image)
            starts.append(kb.add(kb.mul(image, f["img_stride"]),
                                 kb.add(kb.mul(oy, f["y_stride"]), kb.mul(ox, f["x_stride"]))))
        return starts

    def _a_word(self, index):
        """A's `group` bytes at word `index` as the 32-bit word the dot product takes."""
        kb, flip = self.kb, self.spec.signed_a
        if self.spec.group == 4:
            word = kb.load(self.f["a"], index, elem=i32)
            return kb.xor(word, kb.const(0x80808080 - 2 ** 32, i32)) if flip else word
        pair = kb.cast(llvm.ZExtOp, kb.load(self.f["a"], index, elem=i16), i32)  # bytes b0 | b1 << 8
        if flip:
            pair = kb.xor(pair, kb.const(0x8080, i32))
        low = kb.and_(pair, kb.const(0xFF, i32))
        high = kb.mul(kb.and_(pair, kb.const(0xFF00, i32)), kb.const(256, i32))
        return kb.or_(low, high)  # as two 16-bit lanes: b0 | b1 << 16

    def _dot(self, acc, a, b):
        kb, w = self.kb, self.spec.width
        if self.spec.dot == "avx2":
            as16 = [kb.cast(llvm.BitcastOp, x, vec(2 * w, i16)) for x in (a, b)]
            return kb.add(acc, kb.call_intrinsic("llvm.x86.avx2.pmadd.wd", *as16, result_type=vec(w, i32)))
        bits = 512 if w == 16 else 256
        return kb.call_intrinsic(f"llvm.x86.avx512.vpdpbusd.{bits}", acc, a, b, result_type=vec(w, i32))

    def _store(self, r0, panel, rows: int, acc, a_zp) -> None:
        """C = acc - a_zp * colsum (requantized: clamp(round_half_even(that x multiplier) + c_zp);
        dequantized: that x (a_scale x b_scale) + bias, then the activation), the last panel's columns
        past N masked off."""
        kb, f, spec = self.kb, self.f, self.spec
        w, nr = spec.width, spec.nr
        col0 = kb.mul(panel, kb.const(nr))
        zp = kb.splat(a_zp, w)
        for v in range(spec.nvec):
            col = kb.add(col0, kb.const(v * w))
            lanes = kb.max(kb.const(0), kb.min(kb.const(w), kb.sub(f["n"], col)))
            mask = kb.lane_mask(lanes, w)
            shift = kb.mul(zp, kb.load(f["colsum"], col, w, elem=i32))
            scale = kb.load(f["multiplier"], col, w) if spec.requant else None
            if spec.dequant:
                scale = kb.fmul(kb.splat(kb.load(f["a_scale"], kb.const(0)), w), kb.load(f["b_scale"], col, w))
                bias = kb.load(f["bias"], col, w)
            for r in range(rows):
                dst = kb.add(kb.mul(kb.add(r0, kb.const(r)), f["c_rs"]), col)
                with kb.if_(kb.cmp("sgt", lanes, kb.const(0))):
                    out = kb.sub(acc[r * spec.nvec + v], shift)
                    if spec.requant:
                        kb.masked_store(self._requantize(out, scale), f["c"], dst, mask, w, elem=i8)
                    elif spec.dequant:
                        wide = kb.fadd(kb.fmul(kb.cast(llvm.SIToFPOp, out, f32), scale), bias)
                        if spec.activation != "none":
                            wide = activation_epilogue(kb, spec.activation, wide, w)
                        kb.masked_store(wide, f["c"], dst, mask, w)
                    else:
                        kb.masked_store(out, f["c"], dst, mask, w, elem=i32)

    def _requantize(self, acc, scale):
        """int32 sums -> C's bytes: clamp(round_half_even(acc x scale) + c_zp, c_min, c_max)."""
        kb, f, w = self.kb, self.f, self.spec.width
        as_f32 = [kb.splat(kb.cast(llvm.SIToFPOp, f[x], f32), w) for x in ("c_zp", "c_min", "c_max")]
        c_zp, c_min, c_max = as_f32
        q = kb.fadd(kb.intrinsic("llvm.roundeven", kb.fmul(kb.cast(llvm.SIToFPOp, acc, f32), scale)), c_zp)
        q = kb.intrinsic("llvm.minnum", kb.fmax(q, c_min), c_max)
        bits = kb.cast(llvm.BitcastOp, kb.fadd(q, kb.fconst(BYTE_MAGIC, w)), vec(w, i32))
        return kb.cast(llvm.TruncOp, bits, vec(w, i8))
