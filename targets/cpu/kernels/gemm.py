"""Register-blocked GEMM: C[b] = A[b] @ Bpacked[b] (+ bias) (+ residual) (then activation).

B is packed into panels of NR columns ([panel][k][NR], zero padded) — at compile
time for weights, by `pack_b_kernel` at run time otherwise. A tile of MR rows x
NR columns accumulates in MR*NR/VW vector registers with FMA; the epilogue adds
the bias (per column, or per row for convolutions), a residual tensor read at C's
own positions (a ResNet shortcut) and applies the activation while the tile is in
registers, after the last K slice only (earlier slices store partial sums). A is read through (row, col) strides, so
transposed A needs no copy. Batches may be grouped (grouped convolution): batch
index = image * groups + group, with A and C offset per image and per group.
Work items are (batch, row block, panel block) triples. float64 GEMMs are the same kernels over
doubles (PanelType.F64: half the lanes per vector, K slices half as deep).

A GemmSpec.conv_a kernel takes the CONV_A_FIELDS after GEMM_FIELDS; when their conv_c (channels)
is not 0, A is the implicit channels-last im2col of a KxK convolution's NHWC input: row p =
(image, oy, ox), column k = (tap a, tap b, channel) holds the input at (oy*sh - ph + a*dh,
ox*sw - pw + b*dw, channel), zero in the padding. The A pack reads those C-runs from the input
directly, so no [P, K] column matrix is ever written. Within a conv_a kernel a run-time switch:
a model's convolutions with and without an im2col share its kernels (the pack is a small part of
each, and every variant compiled twice would double its cost); a model without convolutions (an
MLP) compiles no pack at all.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import Float16Type, f32, f64, i1, i16, i32
from xdsl.ir import Attribute, SSAValue

from pyflame_rt.dtype import DType
from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature, vec
from pyflame_rt.targets.cpu.kernels.amx import TILE_ROWS, amx, load_tile_config
from pyflame_rt.targets.cpu.kernels.elementwise import activation_tag, epilogue as activation_epilogue
from pyflame_rt.targets.cpu.kernels.typed import Typed

# FMA latency (4 cycles) x FMA ports (2): independent accumulators needed to keep the ports busy
MIN_ACCUMULATORS = 8
# packed A rows: the K slice's depth rounded up to 16 floats, plus 16 (rows 2 KB apart would
# all map to the same L1 sets)
A_ROW_PAD = 16
# a row block meeting at most this many B panels reads A in place: the pack would be reused too
# few times to pay for its copy
DIRECT_A_MAX_PANELS = 2
# so does a GEMM this shallow: its rows are one or two cache lines, and copying them costs as much
# as the FMAs
DIRECT_A_MAX_K = 32
# deepest K slice (GemmSpec.kc): each slice reloads and stores all of C, so slices are deep; 576
# holds a 3x3 convolution over 64 channels in one slice (and K = 1152 / 2304 in 2 / 4)
KC = 576
# bytes per cache line: one prefetch per line of A
LINE_BYTES = 64
# deepest K slice of a K deeper than KC when several row tiles reuse each B slice (float32 panels):
# the slice's 32 columns (16 KB) stay in L1 across the tiles, where a 576-deep one (72 KB) spills.
# BERT-base's K = 768 / 3072 GEMMs at M = 128 run 10-20% faster, as onnxruntime's 128-deep slices
KC_REUSED = 128
# B prefetch: a row tile fetches at most this many lines of the next panel. With few row tiles
# (M of 1-32) a share would be a burst of up to a whole L1 that evicts the panel in use; a
# matrix-vector product (M = 1) is left to the hardware prefetcher
B_PREFETCH_MAX_LINES = 64
# ... and only while B is cold: larger than L2 (512 KB), or met by at most a few row blocks per
# image. A smaller B with many row blocks is reread from L2, and fetching the next panel into L1
# would only evict the panel in use
B_PREFETCH_MIN_BYTES = 512 * 1024
B_PREFETCH_COLD_BLOCKS = 4

# a GEMM of at most this many multiply-adds (static shapes) runs one-row tiles: it takes
# microseconds either way, and one-row tiles need no remainder-row variants (a fraction of the
# code to compile)
SMALL_GEMM_MACS = 16384

# the kernel's fields, in the order the lowering passes them
GEMM_FIELDS = ("a", "b", "c", "bias", "m", "n", "k", "a_rs", "a_cs",
               "a_bs", "b_bs", "c_bs", "mblocks", "nblocks", "ncp", "npanels", "groups", "a_gs", "c_gs",
               "residual", "c_rs")
# after GEMM_FIELDS in a conv_a kernel only: when conv_c != 0 (A is an NHWC convolution's input),
# its channels and geometry (else unread)
CONV_A_FIELDS = ("conv_c", "h", "wi", "oh", "ow", "kw", "sh", "sw", "dh", "dw", "ph", "pw")
GEMM_BUFFERS = ("a", "b", "c", "bias", "residual")


# AMX tiles (BF16_TILES): 16 rows of 64 bytes; a C tile is 16 x 16 float32, an A tile 16 rows of
# TILE_K bf16, a B tile TILE_K / 2 rows of 16 bf16 pairs. A register tile is 2 x 2 C tiles.
TILE_K = 32


class PanelType(Enum):
    """The element type of packed B. Half panels (constant B only) hold half the bytes and are widened
    to float32 in the K loop (bf16 by a shift, f16 by vcvtph2ps), except the bf16 pairs: rows of
    (k, k + 1) bf16 pairs, one 32-bit word per column, multiplied by A converted to bf16 pairs while
    it is packed (so always packed), with vdpbf16ps (BF16_PAIRS) or AMX tiles (BF16_TILES).
    Accumulation and epilogues are float32, except with F64 panels: a float64 GEMM, whose A, C,
    bias and residual are float64 too, accumulated and finished in float64."""

    F32 = "f32"
    F64 = "f64"
    F16 = "f16"
    BF16 = "bf16"
    BF16_PAIRS = "bf16x2"
    BF16_TILES = "bf16amx"  # the pairs layout, K padded to whole AMX tiles, multiplied by tdpbf16ps

    @property
    def group(self) -> int:
        """Consecutive k in one unit of a panel row."""
        return 2 if self in (PanelType.BF16_PAIRS, PanelType.BF16_TILES) else 1

    @property
    def k_align(self) -> int:
        """K is padded with zeros to a multiple of this: a B tile is TILE_K deep."""
        return TILE_K if self is PanelType.BF16_TILES else self.group

    @property
    def unit(self) -> Attribute:
        """A panel row's element as the kernel loads it."""
        return {PanelType.F32: f32, PanelType.F64: f64, PanelType.F16: Float16Type(), PanelType.BF16: i16}.get(self, i32)

    @property
    def unit_bytes(self) -> int:
        return {PanelType.F16: 2, PanelType.BF16: 2, PanelType.F64: 8}.get(self, 4)

    @property
    def dtype(self) -> DType:
        """How the panel is stored (numpy: `pack_b`)."""
        return {PanelType.F32: DType.FLOAT32, PanelType.F64: DType.FLOAT64,
                PanelType.F16: DType.FLOAT16}.get(self, DType.BFLOAT16)

    @property
    def compute_dtype(self) -> DType:
        """The type of A, C, the accumulators and the epilogue."""
        return DType.FLOAT64 if self is PanelType.F64 else DType.FLOAT32


@dataclass(frozen=True)
class GemmSpec:
    """A GEMM kernel's compile-time shape. Cache blocking (BLIS order): a work item owns
    MC = mr*mc_tiles rows x nc_panels panels of C; inside it, K is split into slices of at
    most kc (kc_reused past kc with several row tiles) so the B slice (depth x NR) stays in L1
    across the row tiles and the A block (MC x depth) stays in L2 across the panels."""

    width: int        # lanes of the compute type (panel.compute_dtype) per vector
    nvec: int         # vectors per panel row: NR = nvec * width
    mr: int           # rows per register tile
    has_bias: bool
    activation: str   # "none" or a graph activation string
    unit_a_cs: bool = True  # A's column stride is 1 (not transposed): frees address registers
    bias_per_row: bool = False  # the bias has one value per row of C (per output channel of a conv)
    residual: bool = False  # add a tensor laid out like C (same strides and offsets) before the activation
    conv_a: bool = False  # A may be an NHWC convolution's implicit im2col (CONV_A_FIELDS with conv_c != 0)
    # the packed A block (mc rows of kc + A_ROW_PAD floats: 341 KB with 6-row tiles, 444 KB with
    # 8-row ones) stays in a 512 KB L2 across the panels of a work item
    kc: int = KC
    mc_tiles: int = 24
    nc_panels: int = 16
    panel: PanelType = PanelType.F32

    @property
    def nr(self) -> int:
        return self.nvec * self.width

    @property
    def mc(self) -> int:
        return self.mr * self.mc_tiles

    @property
    def elem(self) -> Attribute:
        """A's, C's and the accumulators' element (f32, or f64 with F64 panels)."""
        return f64 if self.panel is PanelType.F64 else f32

    @property
    def line(self) -> int:
        """Elements of `elem` per cache line."""
        return LINE_BYTES // self.panel.compute_dtype.itemsize

    @property
    def kc_reused(self) -> int:
        """The deepest K slice when K exceeds kc and a row block has several tiles (KC_REUSED);
        other panels (half precision, float64) keep kc."""
        return min(self.kc, KC_REUSED) if self.panel is PanelType.F32 else self.kc

    @property
    def name(self) -> str:
        return (f"gemm_{self.mr}x{self.nr}_w{self.width}_{'b' if self.has_bias else 'nb'}"
                f"_{activation_tag(self.activation)}"
                f"_k{self.kc}m{self.mc_tiles}n{self.nc_panels}{'' if self.unit_a_cs else '_sa'}"
                f"{'_rb' if self.bias_per_row else ''}{'_res' if self.residual else ''}"
                f"{'_conv' if self.conv_a else ''}{'' if self.panel is PanelType.F32 else '_' + self.panel.value}")

    @property
    def signature(self) -> Signature:
        return Signature.of(GEMM_FIELDS + (CONV_A_FIELDS if self.conv_a else ()), buffers=GEMM_BUFFERS)

    @staticmethod
    def for_target(width: int, num_registers: int, has_bias: bool, activation: str,
                   unit_a_cs: bool = True, bias_per_row: bool = False, residual: bool = False,
                   conv_a: bool = False, small: bool = False, panel: PanelType = PanelType.F32) -> "GemmSpec":
        """The register tile for the target (`width` lanes of the panel's compute type); `small` (a
        GEMM of at most SMALL_GEMM_MACS) takes one-row tiles: no remainder-row variants, a fraction of
        the code to compile. float64 K slices are half as deep (k_slice_depth): the packed A block
        keeps its bytes."""
        nvec = 2
        if panel is PanelType.BF16_TILES:  # 2 x 2 tiles of 16 x 16 (width is 16); 192-row A blocks
            return GemmSpec(width, nvec, 2 * TILE_ROWS, has_bias, activation, unit_a_cs, bias_per_row, residual,
                            conv_a, mc_tiles=6, panel=panel)
        mr = 1 if small else max(1, min(8, (num_registers - nvec - 1) // nvec))
        return GemmSpec(width, nvec, mr, has_bias, activation, unit_a_cs, bias_per_row, residual=residual,
                        conv_a=conv_a, kc=k_slice_depth(panel.compute_dtype), panel=panel)


def k_slice_depth(dtype: DType) -> int:
    """The deepest K slice of a GEMM computing in `dtype`: KC floats' bytes."""
    return KC * 4 // dtype.itemsize


def pack_b(b: np.ndarray, nr: int, panel: PanelType = PanelType.F32) -> np.ndarray:
    """[..., K, N] -> [..., ceil(N/NR), K, NR] zero padded (compile-time packing), stored as `panel`
    (rounded to nearest even); bf16 pairs: [..., ceil(N/NR), K' / 2, NR, 2], K zero padded to K'
    (a multiple of panel.k_align)."""
    *batch, k, n = b.shape
    panels, g = -(-n // nr), panel.group
    padded = np.zeros((*batch, -(-k // panel.k_align) * panel.k_align, panels * nr), dtype=panel.compute_dtype.numpy)
    padded[..., :k, :n] = b
    rows = padded.reshape(*batch, padded.shape[-2] // g, g, panels, nr)  # [..., K / g, g, panel, NR]
    packed = np.moveaxis(rows, (-4, -3, -2, -1), (-3, -1, -4, -2))  # [..., panel, K / g, NR, g]
    return np.ascontiguousarray(packed.astype(panel.dtype.numpy)).reshape(*batch, panels, rows.shape[-4], nr * g)


def pad_bias(bias: np.ndarray, nr: int, dtype: DType = DType.FLOAT32) -> np.ndarray:
    n = bias.shape[-1]
    out = np.zeros(-(-n // nr) * nr, dtype=dtype.numpy)
    out[:n] = bias
    return out


def gemm_kernel(spec: GemmSpec) -> func.FuncOp:
    """The kernel of `spec`: a loop nest emitted top-down by _GemmEmitter, one method per level:
    row blocks (`_row_block`) > K slices (`_k_slice`: pack A) > B panels (`_panel`) > register
    tiles (`_tile`: prefetch, K loop) > epilogue (`_store_tile`: bias, residual, activation)."""
    return _GemmEmitter(spec).emit()


@dataclass(frozen=True)
class _RowBlock:
    """Rows [lo, hi) of one batch's C against panels [p_lo, p_hi): A packed once for all of them
    (`_panel_chunk`: those of one chunk; the whole block's range has no A yet, direct / a_ptr None)."""

    batch: SSAValue
    a_base: SSAValue     # A's (image, group) offset
    c_base: SSAValue     # C's (image, group) offset
    bias_base: SSAValue  # this group's first row in a per-row bias
    lo: SSAValue
    hi: SSAValue
    full_hi: SSAValue    # lo + a whole number of mr-row tiles; [full_hi, hi) is the remainder
    p_lo: SSAValue
    p_hi: SSAValue
    direct: SSAValue | None  # i1: A is read in place, not packed
    a_ptr: SSAValue | None   # A itself when direct, else the pack


@dataclass(frozen=True)
class _KSlice:
    """Columns [k0, k1) of A (rows [r0, r1) of packed B). A[row, k] is a_ptr[a_origin + row * a_rs + k],
    in place or in the pack (row-major, rows pack_rs apart, first row the block's lo, first column
    k0); with BF16 pairs, the pair (k, k + 1) is the word a_origin + row * a_rs + k / 2."""

    k0: SSAValue
    k1: SSAValue
    r0: SSAValue     # the slice's rows of packed B (and, with BF16 pairs, words of a packed A row)
    r1: SSAValue
    first: SSAValue  # i1: C holds no partial sums yet
    last: SSAValue   # i1: the epilogue runs after this slice
    pack_rs: SSAValue
    a_rs: SSAValue
    a_origin: SSAValue


@dataclass(frozen=True)
class _Panel:
    """NR columns of C from col0 (ncols of them real) and their packed B at b_off."""

    col0: SSAValue
    ncols: SSAValue
    b_off: SSAValue
    lanes: list[SSAValue]  # per vector of the panel row: its real columns, 0..width
    masks: list[SSAValue]  # per vector: lane_mask(lanes)
    next_b: SSAValue      # the next panel's packed B
    prefetch_b: SSAValue  # i1: fetch a share of the next panel's B slice
    b_share: SSAValue     # rows of that slice one row tile fetches


@dataclass(frozen=True)
class _Tile:
    """A register tile: `rows` rows of C from first_row x `nv` vectors of the panel."""

    rows: int
    nv: int
    first_row: SSAValue
    c_rows: list[SSAValue]  # per row: C's offset of (row, col0)
    a_rows: list[SSAValue]  # per row: A's offset of (row, 0) from a_ptr


class _GemmEmitter:
    """Emits one GemmSpec's kernel into a KernelBuilder. Work items are (batch, row block, panel
    block) triples, item = (batch * mblocks + mb) * nblocks + nb; the items of [begin, end) that
    share a row block are done as one, in chunks of panels whose C is at most a work item's
    (`_chunk_panels`), so its A block is packed once per chunk rather than once per item."""

    def __init__(self, spec: GemmSpec):
        self.spec = spec
        self.kb = kb = KernelBuilder(spec.name, spec.signature)
        self.f = kb.fields
        self.a, self.bp, self.c, self.bias, self.res = (self.f[x] for x in ("a", "b", "c", "bias", "residual"))
        self.elem = spec.elem
        self.apack = kb.scratch(spec.mc * (spec.kc + A_ROW_PAD), self.elem)  # per-thread stack: the packed A block
        self.zero = kb.vconst(0.0, self.elem, spec.width)
        self.tiles = spec.panel is PanelType.BF16_TILES
        self.pairs = self.tiles or spec.panel is PanelType.BF16_PAIRS  # A packed as bf16 pairs
        if self.tiles:
            self.ctile = kb.scratch(spec.mr * spec.nr)  # the register tile, stored by the C tiles
            load_tile_config(kb)

    def emit(self) -> func.FuncOp:
        kb, f = self.kb, self.f
        m_tiles = kb.ceil_div(f["m"], self.spec.mr)
        mblocks = kb.max(f["mblocks"], kb.const(1))
        b_cold = self._b_is_cold(mblocks)
        blk_lo = kb.div(kb.begin, f["nblocks"])
        blk_hi = kb.add(kb.div(kb.sub(kb.end, kb.const(1)), f["nblocks"]), kb.const(1))
        with kb.loop(blk_lo, blk_hi) as blk:
            whole = self._row_block_at(blk.iv, m_tiles, mblocks)
            chunk_panels = self._chunk_panels(whole)
            with kb.loop(whole.p_lo, whole.p_hi, chunk_panels) as chunk:
                self._row_block(self._panel_chunk(whole, chunk.iv, chunk_panels), b_cold)
        if self.tiles:
            amx(kb, "tilerelease")
        return kb.finish()

    def _b_is_cold(self, mblocks: SSAValue) -> SSAValue:
        """i1: B is worth prefetching panel by panel: one batch's packed B exceeds L2, or few row
        blocks reread it (otherwise it is reread from L2, and fetching into L1 evicts the panel in use)."""
        kb, f = self.kb, self.f
        b_bytes = kb.mul(kb.mul(self._panel_rows(), f["npanels"]), kb.const(self.spec.nr * self.spec.panel.unit_bytes))
        return kb.or_(kb.cmp("sgt", b_bytes, kb.const(B_PREFETCH_MIN_BYTES)),
                      kb.cmp("sle", mblocks, kb.const(B_PREFETCH_COLD_BLOCKS)))

    def _b_rows(self, k: SSAValue) -> SSAValue:
        """Rows of a packed B panel for the first k of K: one per `panel.group` k."""
        return self.kb.ceil_div(k, 2) if self.pairs else k

    def _panel_rows(self) -> SSAValue:
        """Rows of a packed B panel: K padded to `panel.k_align`."""
        kb, panel = self.kb, self.spec.panel
        if panel.k_align == panel.group:
            return self._b_rows(self.f["k"])
        return kb.mul(kb.ceil_div(self.f["k"], panel.k_align), kb.const(panel.k_align // panel.group))

    # ------------------------------------------------------------------ row blocks
    def _row_block_at(self, blk: SSAValue, m_tiles: SSAValue, mblocks: SSAValue) -> _RowBlock:
        """Row block `blk` (= batch * mblocks + mb) and the panels of [begin, end)'s items in it."""
        kb, f, mr = self.kb, self.f, self.spec.mr
        first_item = kb.mul(blk, f["nblocks"])
        nb_lo = kb.sub(kb.max(kb.begin, first_item), first_item)
        nb_hi = kb.sub(kb.min(kb.end, kb.add(first_item, f["nblocks"])), first_item)
        batch = kb.div(blk, f["mblocks"])
        mb = kb.rem(blk, f["mblocks"])
        image, group = kb.div(batch, f["groups"]), kb.rem(batch, f["groups"])
        a_base = kb.add(kb.mul(image, f["a_bs"]), kb.mul(group, f["a_gs"]))
        c_base = kb.add(kb.mul(image, f["c_bs"]), kb.mul(group, f["c_gs"]))
        bias_base = kb.mul(group, f["m"])
        lo = self._block_first_row(mb, m_tiles, mblocks)
        hi = kb.min(f["m"], self._block_first_row(kb.add(mb, kb.const(1)), m_tiles, mblocks))
        full_hi = kb.add(lo, kb.mul(kb.div(kb.sub(hi, lo), kb.const(mr)), kb.const(mr)))
        p_lo = kb.mul(nb_lo, f["ncp"])
        p_hi = kb.min(f["npanels"], kb.mul(nb_hi, f["ncp"]))
        return _RowBlock(batch, a_base, c_base, bias_base, lo, hi, full_hi, p_lo, p_hi, None, None)

    def _chunk_panels(self, blk: _RowBlock) -> SSAValue:
        """Panels per chunk of the block: as many as give C of at most a full work item's (MC rows
        x nc_panels panels), so the K slices sweep a C that stays in L2 (384 KB: 24 panels at
        M = 128), where all of a wide row block's (128 x 3072: 1.5 MB) would go to L3 and back
        once per slice. A one-tile block (a matrix-vector product) is one chunk in practice."""
        kb, spec = self.kb, self.spec
        tiles = kb.max(kb.const(1), kb.ceil_div(kb.sub(blk.hi, blk.lo), spec.mr))
        return kb.div(kb.const(spec.mc_tiles * spec.nc_panels), tiles)

    def _panel_chunk(self, blk: _RowBlock, p_lo: SSAValue, chunk_panels: SSAValue) -> _RowBlock:
        """The block's panels [p_lo, p_lo + chunk_panels), A packed once for them."""
        kb = self.kb
        p_hi = kb.min(blk.p_hi, kb.add(p_lo, chunk_panels))
        direct = self._reads_a_in_place(p_lo, p_hi)
        a_ptr = kb.as_ptr(kb.select(direct, kb.ptr_to_int(self.a), kb.ptr_to_int(self.apack)))
        return replace(blk, p_lo=p_lo, p_hi=p_hi, direct=direct, a_ptr=a_ptr)

    def _block_first_row(self, mb: SSAValue, m_tiles: SSAValue, mblocks: SSAValue) -> SSAValue:
        """The row tiles are split evenly among the row blocks (the lowering makes mblocks >=
        ceil(M / MC), so a block has at most MC rows): blocks differ by at most one tile."""
        kb = self.kb
        return kb.mul(kb.div(kb.mul(mb, m_tiles), mblocks), kb.const(self.spec.mr))

    def _reads_a_in_place(self, p_lo: SSAValue, p_hi: SSAValue) -> SSAValue:
        """i1: A is read in place, not packed: only with unit column stride and no implicit im2col,
        and only when the pack would not pay (few panels reuse it, or rows of one or two lines)."""
        kb, f = self.kb, self.f
        if not self.spec.unit_a_cs or self.pairs:
            return kb.const(0, i1)
        is_matrix = self._a_is_matrix() if self.spec.conv_a else None
        in_place_pays = kb.or_(kb.cmp("sle", kb.sub(p_hi, p_lo), kb.const(DIRECT_A_MAX_PANELS)),
                               kb.cmp("sle", f["k"], kb.const(DIRECT_A_MAX_K)))
        return in_place_pays if is_matrix is None else kb.and_(is_matrix, in_place_pays)

    def _a_is_matrix(self) -> SSAValue:
        """i1 (conv_a kernels): A is a matrix, not an implicit im2col."""
        return self.kb.cmp("eq", self.f["conv_c"], self.kb.const(0))

    def _row_block(self, blk: _RowBlock, b_cold: SSAValue) -> None:
        """K in equal slices of at most `_deepest_slice`, rounded up to whole lines (K = 576 is 2 x 288,
        not 512 + 64 steps that reload and store all of C). K = 0 is one empty slice: its epilogue
        stores C = activation(0 + bias + residual), as for any K."""
        kb, f = self.kb, self.f
        slices = kb.max(kb.const(1), kb.ceil_div(f["k"], self._deepest_slice(blk)))
        align = TILE_K if self.tiles else self.spec.line  # tiles: every slice starts at a whole B tile
        depth = kb.max(kb.const(1), kb.mul(kb.ceil_div(kb.ceil_div(f["k"], slices), align), kb.const(align)))
        with kb.loop(0, kb.max(f["k"], kb.const(1)), depth) as kl:
            self._k_slice(blk, self._k_slice_at(blk, kl.iv, depth), b_cold)

    def _deepest_slice(self, blk: _RowBlock) -> SSAValue:
        """kc_reused when K exceeds kc and the block has more than one row tile, else kc: a K of at
        most kc stays one slice (C never holds partial sums, so a residual may be C itself:
        `result_and_residual_locs`), and a single tile does not reuse the B slice it reads."""
        kb, spec = self.kb, self.spec
        if spec.kc_reused == spec.kc:
            return kb.const(spec.kc)
        shallow = kb.and_(kb.cmp("sgt", self.f["k"], kb.const(spec.kc)),
                          kb.cmp("sgt", kb.sub(blk.hi, blk.lo), kb.const(spec.mr)))
        return kb.select(shallow, kb.const(spec.kc_reused), kb.const(spec.kc))

    # ------------------------------------------------------------------- K slices
    def _k_slice_at(self, blk: _RowBlock, k0: SSAValue, depth: SSAValue) -> _KSlice:
        """The slice from k0; packed rows are as far apart as the slice is deep (plus A_ROW_PAD), so
        a shallow K's block stays within a few pages."""
        kb, f = self.kb, self.f
        k1 = kb.min(f["k"], kb.add(k0, depth))
        first = kb.cmp("eq", k0, kb.const(0))
        last = kb.cmp("eq", k1, f["k"])
        pack_rs = kb.add(kb.mul(kb.ceil_div(kb.sub(k1, k0), A_ROW_PAD), kb.const(A_ROW_PAD)), kb.const(A_ROW_PAD))
        a_rs = kb.select(blk.direct, f["a_rs"], pack_rs)
        r0, r1 = self._b_rows(k0), self._b_rows(k1)  # k0 is a multiple of a line's elements: even
        a_origin = kb.select(blk.direct, blk.a_base, kb.sub(kb.const(0), kb.add(kb.mul(blk.lo, pack_rs), r0)))
        return _KSlice(k0, k1, r0, r1, first, last, pack_rs, a_rs, a_origin)

    def _k_slice(self, blk: _RowBlock, ks: _KSlice, b_cold: SSAValue) -> None:
        kb, f = self.kb, self.f
        kb.if_else(blk.direct, lambda: None, lambda: kb.if_else(
            self._a_is_matrix(), lambda: self._pack_matrix_a(blk, ks),
            lambda: self._pack_conv_a(blk, ks)) if self.spec.conv_a else self._pack_matrix_a(blk, ks))
        if self.pairs:
            self._pack_as_bf16_pairs(blk, ks)
        # each row tile's share of the next panel's B slice (the same for every panel)
        tiles = kb.ceil_div(kb.sub(blk.hi, blk.lo), self.spec.mr)
        b_share = kb.ceil_div(kb.sub(ks.r1, ks.r0), kb.max(tiles, kb.const(1)))
        b_prefetch_pays = kb.and_(kb.cmp("sle", b_share, kb.const(B_PREFETCH_MAX_LINES)), b_cold)
        with kb.loop(blk.p_lo, blk.p_hi) as pl:
            self._panel(blk, ks, self._panel_at(blk, pl.iv, b_share, b_prefetch_pays))

    def _pack_conv_a(self, blk: _RowBlock, ks: _KSlice) -> None:
        """The implicit im2col's rows of this block and slice into the pack (the geometry fields
        hold a convolution's only when conv_c != 0, this branch)."""
        kb = self.kb
        conv = {name: self.f[name] for name in CONV_A_FIELDS}
        conv["c"] = conv.pop("conv_c")
        _ConvAPacker(kb, conv, self.a, blk.a_base, self.apack, ks.pack_rs, ks.k0, ks.k1, self.f["k"],
                     self.spec.width, self.elem).pack(blk.lo, blk.hi)

    def _pack_matrix_a(self, blk: _RowBlock, ks: _KSlice) -> None:
        """A's rows of this block and slice into the pack, through A's (row, column) strides."""
        kb, f = self.kb, self.f
        with kb.loop(blk.lo, blk.hi) as pr:
            dst = kb.sub(kb.mul(kb.sub(pr.iv, blk.lo), ks.pack_rs), ks.k0)
            src = kb.add(blk.a_base, kb.mul(pr.iv, f["a_rs"]))
            if self.spec.unit_a_cs:
                kb.copy(self.a, src, self.apack, dst, ks.k0, ks.k1, self.spec.width, self.elem)
            else:
                with kb.loop(ks.k0, ks.k1) as pk:
                    v = kb.load(self.a, kb.add(src, kb.mul(pk.iv, f["a_cs"])), elem=self.elem)
                    kb.store(v, self.apack, kb.add(dst, pk.iv), self.elem)

    def _pack_as_bf16_pairs(self, blk: _RowBlock, ks: _KSlice) -> None:
        """Each packed row's floats [k0, k1) -> bf16 pairs (vcvtne2ps2bf16, nearest even) in place:
        word j of the row holds columns k0 + 2j (low half) and k0 + 2j + 1. The row is first
        zero-filled up to a whole number of 2w floats (within pack_rs), so an odd K's last pair
        is (x, 0). Word j is written after floats [2j, 2j + 2w) are read, never before."""
        kb, w = self.kb, self.spec.width
        n = kb.sub(ks.k1, ks.k0)
        n_even = kb.mul(kb.ceil_div(n, 2 * w), kb.const(2 * w))
        with kb.loop(blk.lo, blk.hi) as pr:
            row = kb.mul(kb.sub(pr.iv, blk.lo), ks.pack_rs)
            kb.fill(self.apack, row, n, n_even, 0.0, w)
            with kb.loop(0, n_even, 2 * w) as j:
                lo = kb.load(self.apack, kb.add(row, j.iv), w)
                hi = kb.load(self.apack, kb.add(row, kb.add(j.iv, kb.const(w))), w)
                pairs = kb.call_intrinsic(f"llvm.x86.avx512bf16.cvtne2ps2bf16.{w * 32}", hi, lo,
                                          result_type=vec(2 * w, i16))
                kb.store(pairs, self.apack, kb.add(kb.mul(row, kb.const(2)), j.iv), elem=i16)

    # --------------------------------------------------------------------- panels
    def _panel_at(self, blk: _RowBlock, index: SSAValue, b_share: SSAValue, b_prefetch_pays: SSAValue) -> _Panel:
        kb, f, w, nr = self.kb, self.f, self.spec.width, self.spec.nr
        col0 = kb.mul(index, kb.const(nr))
        ncols = kb.min(kb.const(nr), kb.sub(f["n"], col0))
        panel_units = kb.mul(self._panel_rows(), kb.const(nr))
        b_off = kb.add(kb.mul(blk.batch, f["b_bs"]), kb.mul(index, panel_units))
        lanes = [kb.max(kb.const(0), kb.min(kb.const(w), kb.sub(ncols, kb.const(v * w))))
                 for v in range(self.spec.nvec)]
        masks = [kb.lane_mask(n, w) for n in lanes]
        next_b = kb.add(b_off, panel_units)
        prefetch_b = kb.and_(kb.cmp("slt", kb.add(index, kb.const(1)), blk.p_hi), b_prefetch_pays)
        return _Panel(col0, ncols, b_off, lanes, masks, next_b, prefetch_b, b_share)

    def _panel(self, blk: _RowBlock, ks: _KSlice, p: _Panel) -> None:
        """The block's full row tiles, then one specialized tile for the remainder rows. A last panel
        of exactly NR - w columns (N = 24, 40, 1000 with NR = 16: 8 columns) skips its empty vector's
        FMAs in the full tiles (a narrower variant of full vectors only, so no masked epilogue); the
        remainder rows do not, nor a small GEMM's one-row tiles (one variant: less code to compile)."""
        kb, spec = self.kb, self.spec
        nv = spec.nvec
        if self.tiles:
            with kb.loop(blk.lo, blk.hi, spec.mr) as tl:
                self._amx_tile(blk, ks, p, tl.iv)
            return
        if nv > 1 and spec.mr > 1:
            kb.if_else(kb.cmp("eq", p.ncols, kb.const(spec.nr - spec.width)),
                       lambda: self._full_tiles(blk, ks, p, nv - 1), lambda: self._full_tiles(blk, ks, p, nv))
        else:
            self._full_tiles(blk, ks, p, nv)
        rem = kb.sub(blk.hi, blk.full_hi)
        for rows in range(1, spec.mr):
            with kb.if_(kb.cmp("eq", rem, kb.const(rows))):
                self._tile(blk, ks, p, rows, blk.full_hi, nv)

    def _full_tiles(self, blk: _RowBlock, ks: _KSlice, p: _Panel, nv: int) -> None:
        with self.kb.loop(blk.lo, blk.full_hi, self.spec.mr) as tl:
            self._tile(blk, ks, p, self.spec.mr, tl.iv, nv)

    # ---------------------------------------------------------------------- tiles
    def _tile(self, blk: _RowBlock, ks: _KSlice, p: _Panel, rows: int, first_row: SSAValue, nv: int) -> None:
        """A rows x (nv vectors) register tile over the K slice: prefetch what the next tile needs,
        start from zero or C's partial sums, accumulate, store through the epilogue."""
        kb, f, spec = self.kb, self.f, self.spec
        c_rows = [kb.add(blk.c_base, kb.add(kb.mul(kb.add(first_row, kb.const(r)), f["c_rs"]), p.col0))
                  for r in range(rows)]
        a_rows = [kb.add(ks.a_origin, kb.mul(kb.add(first_row, kb.const(r)), ks.a_rs)) for r in range(rows)]
        t = _Tile(rows, nv, first_row, c_rows, a_rows)
        self._prefetch_next_a_rows(blk, ks, t)
        self._prefetch_b_share(blk, ks, p, t)
        self._prefetch_next_c_rows(ks, t)
        init = kb.if_else(ks.first, lambda: [self.zero] * (rows * nv), lambda: kb.if_else(
            kb.cmp("eq", p.lanes[nv - 1], kb.const(spec.width)), lambda: self._partial_sums(p, t, True),
            lambda: self._partial_sums(p, t, False)))
        acc = _k_loop(kb, ks.r0, ks.r1, init, lambda r, acc: self._k_step(blk, p, t, r, acc),
                      _chains(rows * nv, spec.mr * spec.nvec), self.zero)
        self._store_tile(blk, ks, p, t, acc)

    def _k_step(self, blk: _RowBlock, p: _Panel, t: _Tile, row: SSAValue, acc: list) -> list:
        """acc += A[rows, k] x B[k, panel] for packed B's row `row` (k, or the pair (2 row, 2 row + 1)):
        one FMA (or vdpbf16ps) per accumulator."""
        kb, w, nr, panel = self.kb, self.spec.width, self.spec.nr, self.spec.panel
        brow = kb.add(p.b_off, kb.mul(row, kb.const(nr)))
        bvecs = [self._b_vector(kb.add(brow, kb.const(v * w))) for v in range(t.nv)]
        acc = list(acc)
        for r in range(t.rows):
            av = kb.splat(kb.load(blk.a_ptr, kb.add(t.a_rows[r], row), elem=panel.unit if self.pairs else self.elem), w)
            for v in range(t.nv):
                i = r * t.nv + v
                acc[i] = (kb.call_intrinsic(f"llvm.x86.avx512bf16.dpbf16ps.{w * 32}", acc[i], av, bvecs[v],
                                            result_type=vec(w)) if self.pairs else kb.fma(av, bvecs[v], acc[i]))
        return acc

    def _b_vector(self, index: SSAValue) -> SSAValue:
        """w units of a packed B row: float32 (half panels widened), or bf16 pair words."""
        kb, w, panel = self.kb, self.spec.width, self.spec.panel
        if panel in (PanelType.F32, PanelType.F64, PanelType.BF16_PAIRS):
            return kb.load(self.bp, index, w, elem=panel.unit)
        return Typed(kb, panel.dtype, w).load(self.bp, index)

    def _partial_sums(self, p: _Panel, t: _Tile, full: bool) -> list:
        """The tile's C as stored by the previous K slice (masked loads unless every lane is real)."""
        kb, w = self.kb, self.spec.width
        return [kb.load(self.c, kb.add(t.c_rows[r], kb.const(v * w)), w, self.elem) if full else
                kb.masked_load(self.c, kb.add(t.c_rows[r], kb.const(v * w)), p.masks[v], w, self.elem)
                for r in range(t.rows) for v in range(t.nv)]

    # ------------------------------------------------------------------ AMX tiles
    def _amx_tile(self, blk: _RowBlock, ks: _KSlice, p: _Panel, first_row: SSAValue) -> None:
        """mr (32) rows from first_row x the panel with 2 x 2 AMX tiles over the K slice, stored
        to ctile, then through the epilogue for the rows that are real. A tile reads whole
        TILE_K-deep chunks: past the slice, A's pack is zero (_pack_as_bf16_pairs); rows past the
        block read stale pack rows, whose C rows are not stored."""
        kb, nr, w = self.kb, self.spec.nr, self.spec.width
        for c in range(4):
            amx(kb, "tilezero", c)
        a_first = kb.add(ks.a_origin, kb.mul(first_row, ks.a_rs))
        a_stride, b_stride = kb.mul(ks.a_rs, kb.const(4)), kb.const(nr * 4)
        with kb.loop(ks.r0, ks.r1, TILE_K // 2) as ch:
            for i in range(2):
                a_tile = kb.add(a_first, kb.add(kb.mul(kb.const(i * TILE_ROWS), ks.a_rs), ch.iv))
                amx(kb, "tileloadd64", 4 + i, kb.gep(blk.a_ptr, a_tile, i32), a_stride)
            for j in range(2):
                b_tile = kb.add(p.b_off, kb.add(kb.mul(ch.iv, kb.const(nr)), kb.const(j * w)))
                amx(kb, "tileloadd64", 6 + j, kb.gep(self.bp, b_tile, i32), b_stride)
            for i in range(2):
                for j in range(2):
                    amx(kb, "tdpbf16ps", 2 * i + j, 4 + i, 6 + j)
        for i in range(2):
            for j in range(2):
                dst = kb.gep(self.ctile, kb.const(i * TILE_ROWS * nr + j * w))
                amx(kb, "tilestored64", 2 * i + j, dst, kb.const(nr * 4))
        rows = kb.min(kb.const(self.spec.mr), kb.sub(blk.hi, first_row))
        kb.if_else(kb.cmp("eq", p.lanes[-1], kb.const(w)),
                   lambda: self._store_amx_rows(blk, ks, p, first_row, rows, True),
                   lambda: self._store_amx_rows(blk, ks, p, first_row, rows, False))

    def _store_amx_rows(self, blk: _RowBlock, ks: _KSlice, p: _Panel, first_row, rows, full: bool) -> None:
        """C rows [first_row, first_row + rows) from ctile (plus the earlier slices' partial sums),
        through the epilogue after the last slice. `full`: every column of the panel is real."""
        kb, f, spec, w = self.kb, self.f, self.spec, self.spec.width
        with kb.loop(0, rows) as r:
            row = kb.add(first_row, r.iv)
            c_row = kb.add(blk.c_base, kb.add(kb.mul(row, f["c_rs"]), p.col0))
            row_bias = (kb.splat(kb.load(self.bias, kb.add(blk.bias_base, row)), w)
                        if spec.has_bias and spec.bias_per_row else None)
            for v in range(spec.nvec):
                tile_sum = kb.load(self.ctile, kb.add(kb.mul(r.iv, kb.const(spec.nr)), kb.const(v * w)), w)
                dst = kb.add(c_row, kb.const(v * w))
                if full:
                    self._store_amx_vector(ks, p, v, tile_sum, dst, row_bias, True)
                else:
                    with kb.if_(kb.cmp("sgt", p.lanes[v], kb.const(0))):
                        self._store_amx_vector(ks, p, v, tile_sum, dst, row_bias, False)

    def _store_amx_vector(self, ks: _KSlice, p: _Panel, v: int, tile_sum, dst, row_bias, full: bool) -> None:
        """C[dst] = the earlier slices' partial sum (none in the first) + this slice's, through the
        epilogue after the last slice."""
        kb, w = self.kb, self.spec.width
        earlier = (lambda: kb.load(self.c, dst, w)) if full else (lambda: kb.masked_load(self.c, dst, p.masks[v], w))
        acc = kb.if_else(ks.first, lambda: [tile_sum], lambda: [kb.fadd(tile_sum, earlier())])[0]
        self._store_vector(p, acc, dst, v, row_bias, full, ks.last)

    # ----------------------------------------------------------------- prefetches
    def _prefetch_next_a_rows(self, blk: _RowBlock, ks: _KSlice, t: _Tile) -> None:
        """A read in place streams from memory: fetch the next tile's rows meanwhile."""
        kb = self.kb
        with kb.if_(blk.direct):
            for r in range(t.rows):
                nxt = kb.add(t.a_rows[r], kb.mul(kb.const(t.rows), ks.a_rs))
                with kb.loop(ks.k0, ks.k1, self.spec.line) as pf:
                    kb.prefetch(blk.a_ptr, kb.add(nxt, pf.iv), self.elem)

    def _prefetch_b_share(self, blk: _RowBlock, ks: _KSlice, p: _Panel, t: _Tile) -> None:
        """This tile's share of the next panel's B slice: a B larger than the caches streams from
        memory one panel slice at a time, and the hardware prefetcher restarts at every panel."""
        kb, nr = self.kb, self.spec.nr
        share = kb.mul(kb.div(kb.sub(t.first_row, blk.lo), kb.const(self.spec.mr)), p.b_share)
        with kb.if_(p.prefetch_b):
            with kb.loop(kb.add(ks.r0, share), kb.min(ks.r1, kb.add(kb.add(ks.r0, share), p.b_share))) as bl:
                kb.prefetch(self.bp, kb.add(p.next_b, kb.mul(bl.iv, kb.const(nr))), elem=self.spec.panel.unit)

    def _prefetch_next_c_rows(self, ks: _KSlice, t: _Tile) -> None:
        """The next tile's C rows (to be written) and residual rows (to be read), one tile ahead of
        the epilogue: rows a row stride apart, which the hardware prefetcher does not follow."""
        kb, f = self.kb, self.f
        with kb.if_(ks.last):
            for r in range(t.rows):
                row = kb.add(t.c_rows[r], kb.mul(kb.const(t.rows), f["c_rs"]))
                for v in range(0, self.spec.nr, self.spec.line):
                    if self.spec.residual:
                        kb.prefetch(self.res, kb.add(row, kb.const(v)), self.elem)
                    kb.prefetch(self.c, kb.add(row, kb.const(v)), self.elem, write=True)

    # ------------------------------------------------------------------- epilogue
    def _store_tile(self, blk: _RowBlock, ks: _KSlice, p: _Panel, t: _Tile, acc: list) -> None:
        """Every panel but the last is full: its tile is stored without per-vector checks, and the
        epilogue is chosen once per tile, not per vector. A narrow tile's vectors are all full."""
        kb, spec = self.kb, self.spec
        if t.nv < spec.nvec:
            self._store_whole_tile(blk, ks, p, t, acc)
        else:
            kb.if_else(kb.cmp("eq", p.lanes[t.nv - 1], kb.const(spec.width)),
                       lambda: self._store_whole_tile(blk, ks, p, t, acc),
                       lambda: self._store_last_panel_tile(blk, ks, p, t, acc))

    def _store_whole_tile(self, blk: _RowBlock, ks: _KSlice, p: _Panel, t: _Tile, acc: list) -> None:
        """Straight-line stores: the fused epilogue after the last K slice, raw partial sums before."""
        spec = self.spec
        if spec.has_bias or spec.residual or spec.activation != "none":
            self.kb.if_else(ks.last, lambda: self._store_full_vectors(blk, p, t, acc, True),
                            lambda: self._store_full_vectors(blk, p, t, acc, False))
        else:
            self._store_full_vectors(blk, p, t, acc, False)

    def _store_full_vectors(self, blk: _RowBlock, p: _Panel, t: _Tile, acc: list, fuse: bool) -> None:
        kb, w = self.kb, self.spec.width
        for r, row_bias in enumerate(self._row_biases(blk, t) if fuse else [None] * t.rows):
            for v in range(t.nv):
                self._store_vector(p, acc[r * t.nv + v], kb.add(t.c_rows[r], kb.const(v * w)), v, row_bias,
                                   True, fuse)

    def _store_last_panel_tile(self, blk: _RowBlock, ks: _KSlice, p: _Panel, t: _Tile, acc: list) -> None:
        """The last panel's tile, vector by vector with masks (one epilogue copy per vector: an exp /
        erf activation's code is large). A vector of no real columns is skipped: masked accesses with
        an empty mask are slow on AMD."""
        kb, w = self.kb, self.spec.width
        for r, row_bias in enumerate(self._row_biases(blk, t)):
            for v in range(t.nv):
                with kb.if_(kb.cmp("sgt", p.lanes[v], kb.const(0))):
                    self._store_vector(p, acc[r * t.nv + v], kb.add(t.c_rows[r], kb.const(v * w)), v, row_bias,
                                       False, ks.last)

    def _row_biases(self, blk: _RowBlock, t: _Tile) -> list:
        """Per tile row: its bias splat (a per-row bias), else None."""
        kb, spec = self.kb, self.spec
        if not (spec.has_bias and spec.bias_per_row):
            return [None] * t.rows
        return [kb.splat(kb.load(self.bias, kb.add(blk.bias_base, kb.add(t.first_row, kb.const(r))), elem=self.elem),
                         spec.width)
                for r in range(t.rows)]

    def _store_vector(self, p: _Panel, val: SSAValue, dst: SSAValue, v: int, row_bias: SSAValue | None,
                      full: bool, fuse) -> None:
        """C[dst] = activation(val + bias + residual) when fuse (an i1, or True after the last K
        slice), else val. Full vectors use plain loads and stores: masked ones are slow on AMD even
        with every lane set."""
        kb, spec, w = self.kb, self.spec, self.spec.width
        out = val
        if fuse is not False:
            if row_bias is not None:
                out = kb.fadd(out, row_bias)
            elif spec.has_bias:
                out = kb.fadd(out, kb.load(self.bias, kb.add(p.col0, kb.const(v * w)), w, self.elem))
            if spec.residual:
                out = kb.fadd(out, kb.load(self.res, dst, w, self.elem) if full
                              else kb.masked_load(self.res, dst, p.masks[v], w, self.elem))
            out = activation_epilogue(kb, spec.activation, out, w, spec.panel.compute_dtype)
            if fuse is not True and out is not val:
                out = kb.select(fuse, out, val)
        if full:
            kb.store(out, self.c, dst, self.elem)
        else:
            kb.masked_store(out, self.c, dst, p.masks[v], w, self.elem)


@dataclass(frozen=True)
class _WindowRow:
    """One packed row of the implicit im2col: output pixel (image, oy, ox), its window's first
    input row iy0 and column ix0 (negative in the padding)."""

    dst: SSAValue       # apack offset of the row's column 0
    iy0: SSAValue
    ix0: SSAValue
    img_row0: SSAValue  # the image's first input row (image * h)
    cols_inside: SSAValue  # i1: every tap column is inside the input and dw is 1


@dataclass(frozen=True)
class _TapRow:
    """Tap row `ta` of a window: columns [lo, hi) of the slice, from row_k (its tap column 0)."""

    row_k: SSAValue
    lo: SSAValue
    hi: SSAValue
    row_ok: SSAValue     # i1: the input row is inside the input
    pixel_row: SSAValue  # input pixel index of (image, iy, 0), iy clamped inside


class _ConvAPacker:
    """Copies rows x columns [k0, k1) of the implicit im2col A (see the module docstring) to
    apack, row-major with row stride row_stride. Column k = (tap row a, tap column b, channel): a
    tap row whose taps are all inside the input (dw 1) is one contiguous run of kw*C input
    elements; other tap rows go tap by tap, padding taps as zeros. A whole row (all of K in one
    slice) whose window lies inside the input is its kh runs, copied without per-tap-row checks:
    with few channels (a first conv's C = 3) those checks cost more than the copies. Runs are
    copied with `w`-vectors; the output pixel (image, oy, ox) of a row advances without divisions."""

    def __init__(self, kb: KernelBuilder, g: dict, x, x_off, apack, row_stride, k0, k1, k, w: int, elem: Attribute):
        self.kb, self.g, self.x, self.x_off, self.apack, self.w, self.elem = kb, g, x, x_off, apack, w, elem
        self.row_stride, self.k0, self.k1 = row_stride, k0, k1
        c = g["c"]
        self.run = kb.mul(g["kw"], c)
        self.kh = kb.div(k, self.run)
        self.row_step = kb.mul(kb.mul(g["dh"], g["wi"]), c)  # input elements from one tap row to the next
        self.whole_k = kb.and_(kb.cmp("eq", k0, kb.const(0)), kb.cmp("eq", k1, k))
        self.ta_lo = kb.div(k0, self.run)
        self.ta_hi = kb.add(kb.div(kb.sub(k1, kb.const(1)), self.run), kb.const(1))

    def pack(self, row_lo, row_hi) -> None:
        kb, g = self.kb, self.g
        rest = kb.div(row_lo, g["ow"])
        start = [kb.rem(row_lo, g["ow"]), kb.rem(rest, g["oh"]), kb.div(rest, g["oh"])]
        with kb.loop(row_lo, row_hi, carried=start) as pr:
            ox, oy, image = pr.carried
            row = self._window_row(kb.sub(kb.mul(kb.sub(pr.iv, row_lo), self.row_stride), self.k0), ox, oy, image)
            rows_inside = kb.and_(kb.cmp("sge", row.iy0, kb.const(0)), kb.cmp(
                "slt", kb.add(row.iy0, kb.mul(kb.sub(self.kh, kb.const(1)), g["dh"])), g["h"]))
            kb.if_else(kb.and_(self.whole_k, kb.and_(row.cols_inside, rows_inside)),
                       lambda: self._copy_whole_window(row), lambda: self._copy_tap_rows(row))
            pr.next = self._next_pixel(ox, oy, image)

    def _window_row(self, dst, ox, oy, image) -> _WindowRow:
        kb, g = self.kb, self.g
        iy0 = kb.sub(kb.mul(oy, g["sh"]), g["ph"])
        ix0 = kb.sub(kb.mul(ox, g["sw"]), g["pw"])
        img_row0 = kb.mul(image, g["h"])
        cols_inside = kb.and_(kb.and_(kb.cmp("eq", g["dw"], kb.const(1)), kb.cmp("sge", ix0, kb.const(0))),
                              kb.cmp("sle", kb.add(ix0, g["kw"]), g["wi"]))
        return _WindowRow(dst, iy0, ix0, img_row0, cols_inside)

    def _next_pixel(self, ox, oy, image) -> list[SSAValue]:
        """(ox, oy, image) of the next output pixel, row-major."""
        kb, g = self.kb, self.g
        ox1 = kb.add(ox, kb.const(1))
        wrap = kb.cmp("eq", ox1, g["ow"])
        oy1 = kb.add(oy, kb.select(wrap, kb.const(1), kb.const(0)))
        wrap_y = kb.cmp("eq", oy1, g["oh"])
        return [kb.select(wrap, kb.const(0), ox1), kb.select(wrap_y, kb.const(0), oy1),
                kb.add(image, kb.select(wrap_y, kb.const(1), kb.const(0)))]

    def _copy_whole_window(self, row: _WindowRow) -> None:
        """All of K, the window inside the input: kh runs of kw*C elements."""
        kb, g = self.kb, self.g
        src = kb.add(self.x_off, kb.mul(kb.add(kb.mul(kb.add(row.img_row0, row.iy0), g["wi"]), row.ix0), g["c"]))
        with kb.loop(0, self.kh) as ta:
            kb.copy(self.x, kb.add(src, kb.mul(ta.iv, self.row_step)), self.apack,
                    kb.add(row.dst, kb.mul(ta.iv, self.run)), kb.const(0), self.run, self.w, self.elem)

    def _copy_tap_rows(self, row: _WindowRow) -> None:
        """The slice's tap rows one by one: a run when the tap row is inside, else tap by tap."""
        kb, g = self.kb, self.g
        with kb.loop(self.ta_lo, self.ta_hi) as ta:
            row_k = kb.mul(ta.iv, self.run)
            lo, hi = kb.max(self.k0, row_k), kb.min(self.k1, kb.add(row_k, self.run))
            row_ok, iy = kb.in_bounds(kb.add(row.iy0, kb.mul(ta.iv, g["dh"])), g["h"])
            tap_row = _TapRow(row_k, lo, hi, row_ok, kb.mul(kb.add(row.img_row0, iy), g["wi"]))
            kb.if_else(kb.and_(row_ok, row.cols_inside),
                       lambda: self._copy_run(row, tap_row, row.ix0, row_k, lo, hi),
                       lambda: self._copy_taps(row, tap_row))

    def _copy_taps(self, row: _WindowRow, tap_row: _TapRow) -> None:
        """A tap row tap by tap: each tap's channels, or zeros for a padding tap."""
        kb, g = self.kb, self.g
        c = g["c"]
        tb_lo = kb.div(kb.sub(tap_row.lo, tap_row.row_k), c)
        tb_hi = kb.add(kb.div(kb.sub(kb.sub(tap_row.hi, tap_row.row_k), kb.const(1)), c), kb.const(1))
        with kb.loop(tb_lo, tb_hi) as tb:
            tap_k = kb.add(tap_row.row_k, kb.mul(tb.iv, c))
            col_ok, ix = kb.in_bounds(kb.add(row.ix0, kb.mul(tb.iv, g["dw"])), g["wi"])
            t_lo, t_hi = kb.max(tap_row.lo, tap_k), kb.min(tap_row.hi, kb.add(tap_k, c))
            kb.if_else(kb.and_(tap_row.row_ok, col_ok), lambda: self._copy_run(row, tap_row, ix, tap_k, t_lo, t_hi),
                       lambda: kb.fill(self.apack, row.dst, t_lo, t_hi, 0.0, self.w, self.elem))

    def _copy_run(self, row: _WindowRow, tap_row: _TapRow, pixel, run_k, lo, hi) -> None:
        """Columns [lo, hi) from the input; column run_k is channel 0 of input pixel `pixel` of
        the tap row."""
        kb = self.kb
        src = kb.add(self.x_off, kb.sub(kb.mul(kb.add(tap_row.pixel_row, pixel), self.g["c"]), run_k))
        kb.copy(self.x, src, self.apack, row.dst, lo, hi, self.w, self.elem)


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


def pack_b_kernel_name(nr: int, dtype: DType = DType.FLOAT32) -> str:
    return f"pack_b_{nr}" if dtype is DType.FLOAT32 else f"pack_b_{nr}_{dtype.value}"


def pack_b_kernel(nr: int, dtype: DType = DType.FLOAT32) -> func.FuncOp:
    """Run-time packing of a non-constant B (strided, so transposed B needs no copy), float32 or float64."""
    kb = KernelBuilder(pack_b_kernel_name(nr, dtype), Signature.of(PACK_FIELDS, buffers=("b", "bp")))
    f = kb.fields
    b, bp = f["b"], f["bp"]
    elem = f64 if dtype is DType.FLOAT64 else f32
    zero = kb.vconst(0.0, elem)
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
                kb.store(zero, bp, kb.add(drow, jl.iv), elem)
            with kb.loop(0, ncols) as jl:
                src = kb.add(src_b, kb.add(kb.mul(kl.iv, f["b_rs"]), kb.mul(kb.add(col0, jl.iv), f["b_cs"])))
                kb.store(kb.load(b, src, elem=elem), bp, kb.add(drow, jl.iv), elem)
    return kb.finish()
