"""Integer GEMM: C[m, n] (int32) = sum_k (A[m, k] - a_zp) * B[k, n], A uint8 (or int8), B int8 constant.

B is packed at compile time into panels of NR columns of 32-bit words, each word `group`
consecutive k of one column: [panel][K / group][NR]. A register tile of MR rows x NR columns
accumulates int32 vectors; per k group, a row's A word (its `group` bytes) is broadcast and
multiplied with the panel row:

- VNNI (AVX-512 VNNI, 16 lanes; AVX-VNNI, 8): `vpdpbusd` adds the four u8 x s8 products of each
  lane to the accumulator; words are 4 bytes.
- AVX2: `vpmaddwd` of widened words: A bytes zero-extended, B stored sign-extended to 16 bits at
  compile time, words of 2 k; each lane adds two exact products (no `vpmaddubsw` s16 saturation).
- AMX (uint8 A, K a multiple of AMX_K): a 32 x 32 register tile is 2 x 2 C tiles (kernels/amx.py),
  `tdpbusd` of two A tiles (16 rows x 64 k, read in place) by two B tiles (16 words of the VNNI
  panel rows, 64 k x 16 columns, read at the panel's row stride); the sums go through a stack
  tile into the vector epilogue. Rows short of a register tile take the AVX-512 VNNI path (its
  8-row register tiles, then row by row).

The zero point of A (a run-time value: DynamicQuantizeLinear's) is taken out in the epilogue as
a_zp * colsum(B), colsum computed at packing time; B's zero point is 0 (symmetric weights).
An int8 A (`signed_a`) is read as the uint8 A xor 0x80 = A + 128, so its zero point is a_zp + 128
(the caller's: folded into the column sums of a requantizing GEMM).
The epilogue stores C as int32, as 8-bit requantized (`requant`), or as float32 dequantized
(`dequant`: the sums x a_scale x b_scale[column] + bias[column], onnxruntime's MatMulIntegerToFloat,
then a fused activation).
Work items are (row tile, panel) pairs, ordered by blocks of `pblock` panels (`panel_block`: their
packed B fits half of L2): every row tile meets one block's panels before the next block, so B is
read from memory once however many row tiles there are.
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
# 16-lane register tiles: 8 rows x 2 vectors, 16 of the 32 registers accumulating (8-lane ones keep
# 4 rows within 16 registers)
VNNI_ROWS = 8


@dataclass(frozen=True)
class Int8GemmSpec:
    dot: str          # a DOT_PRODUCTS name
    mr: int = 4       # rows per register tile
    nvec: int = 2     # vectors per panel row
    requant: bool = False  # C is 8-bit: requantized in the epilogue (REQUANT_FIELDS), else int32
    dequant: bool = False  # C is float32: sums x a_scale x b_scale + bias (DEQUANT_FIELDS)
    activation: str = "none"  # a dequantized C's activation (activation_spelling)
    signed_a: bool = False  # A is int8, read as uint8 A + 128 (A_OFFSET)

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
    def name(self) -> str:
        epilogue = "_rq" if self.requant else f"_dq_{activation_tag(self.activation)}" if self.dequant else ""
        return f"gemm_{'s8' if self.signed_a else 'u8'}s8_{self.dot}_{self.mr}x{self.nr}{epilogue}"

    @property
    def signature(self) -> Signature:
        if self.dequant:
            return Signature.of(INT8_GEMM_FIELDS + DEQUANT_FIELDS, buffers=INT8_GEMM_BUFFERS + DEQUANT_FIELDS)
        return Signature.of(INT8_GEMM_FIELDS + (REQUANT_FIELDS if self.requant else ()),
                            buffers=INT8_GEMM_BUFFERS + (("multiplier",) if self.requant else ()))

    @staticmethod
    def for_features(features, requant: bool = False, signed_a: bool = False, dequant: bool = False,
                     k: int = 0, activation: str = "none") -> "Int8GemmSpec | None":
        """The best dot product the target's features allow, or None (no int8 kernel). AMX tiles
        need a uint8 A and its K (`k`) a positive multiple of AMX_K."""
        have, whole_tiles = set(features), k > 0 and k % AMX_K == 0 and not signed_a
        dot = next((d for d in DOT_PRODUCTS if have.issuperset(d[1]) and (d[0] != "amxint8" or whole_tiles)), None)
        if dot is None:
            return None
        mr = 2 * TILE_ROWS if dot[0] == "amxint8" else VNNI_ROWS if dot[2] == 16 else 4  # AMX: 2 x 2 tiles
        return Int8GemmSpec(dot[0], mr=mr, requant=requant, signed_a=signed_a, dequant=dequant, activation=activation)


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


def panel_block(kg: int, spec: Int8GemmSpec) -> int:
    """Panels per block: as many as fit B_BLOCK_BYTES (at least one)."""
    return max(1, B_BLOCK_BYTES // (kg * spec.nr * 4))


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
            # item = (block, row tile, panel in block); the last block may hold fewer panels
            span = kb.mul(f["pblock"], rtiles)
            block, within = kb.div(item.iv, span), kb.rem(item.iv, span)
            first = kb.mul(block, f["pblock"])
            panels = kb.min(f["pblock"], kb.sub(f["npanels"], first))
            r0 = kb.mul(kb.div(within, panels), kb.const(mr))
            panel = kb.add(first, kb.rem(within, panels))
            rows = kb.min(kb.const(mr), kb.sub(f["m"], r0))
            full = (lambda: self._amx_tile(r0, panel, a_zp)) if self.spec.tiles else \
                (lambda: self._tile(r0, panel, mr, a_zp))
            short = (lambda: self._rows_short_of_tiles(r0, rows, panel, a_zp)) if self.spec.tiles else \
                (lambda: self._rows_one_by_one(r0, rows, panel, a_zp))
            kb.if_else(kb.cmp("eq", rows, kb.const(mr)), full, short)
        if self.spec.tiles:
            amx(kb, "tilerelease")
        return kb.finish()

    def _rows_short_of_tiles(self, r0, rows, panel, a_zp) -> None:
        """Rows short of an AMX register tile: AVX-512 VNNI register tiles of VNNI_ROWS, then one by one."""
        kb = self.kb
        tiled = kb.mul(kb.div(rows, kb.const(VNNI_ROWS)), kb.const(VNNI_ROWS))
        with kb.loop(r0, kb.add(r0, tiled), VNNI_ROWS) as t:
            self._tile(t.iv, panel, VNNI_ROWS, a_zp)
        self._rows_one_by_one(kb.add(r0, tiled), kb.sub(rows, tiled), panel, a_zp)

    def _rows_one_by_one(self, r0, rows, panel, a_zp) -> None:
        with self.kb.loop(r0, self.kb.add(r0, rows)) as r:
            self._tile(r.iv, panel, 1, a_zp)

    def _tile(self, r0, panel, rows: int, a_zp) -> None:
        kb, f, spec = self.kb, self.f, self.spec
        w, nr = spec.width, spec.nr
        b_panel = kb.mul(panel, kb.mul(f["kg"], kb.const(nr)))
        a_rows = [kb.mul(kb.add(r0, kb.const(r)), f["a_rs"]) for r in range(rows)]
        with kb.loop(0, f["kg"], carried=[self.zero] * (rows * spec.nvec)) as kl:
            brow = kb.add(b_panel, kb.mul(kl.iv, kb.const(nr)))
            bvecs = [kb.load(f["b"], kb.add(brow, kb.const(v * w)), w, elem=i32) for v in range(spec.nvec)]
            acc = list(kl.carried)
            for r in range(rows):
                a = kb.splat(self._a_word(kb.add(a_rows[r], kl.iv)), w)
                for v in range(spec.nvec):
                    acc[r * spec.nvec + v] = self._dot(acc[r * spec.nvec + v], a, bvecs[v])
            kl.next = acc
        self._store(r0, panel, rows, kl.results, a_zp)

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
