"""Blocked 2-D transpose: dst[s, r] = src[r, s] for the innermost two dims of a strided copy.

`emit_copy` uses it when the copy's innermost dim walks the source with a stride
and the next one walks it contiguously (NCHW <-> NHWC layout transposes, any
Transpose whose last two merged dims swap). One work item is a tile of `width`
source columns (all source rows) inside one outer index: per block of
`tile_rows` source rows, `tile_rows` vector loads, an in-register transpose by
vector shuffles, `tile_rows` vector stores. `tile_rows` is either `width` (a
square tile: each output chunk is one destination row segment) or all the rows
when there are fewer than `width` and destination rows are contiguous (the
`width` destination rows of a tile are then one contiguous run, e.g. the 3
channels of an RGB image going channels-last). Rows left over from the tiles
and a last partial column tile are copied element by element, so nothing is
read or written outside the tensors. Elements are moved as integers of the
item size, so one kernel serves every 4- or 8-byte dtype.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerType

from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature
from pyflame_rt.targets.cpu.kernels.copy import dim_fields, dims_of, outer_offsets

TRANSPOSE2D_HEAD = ("dst", "src", "dst_off", "src_off", "rows", "cols", "dst_stride", "src_stride")
# then per outer dim: size, dst_stride, src_stride (outermost first)


@dataclass(frozen=True)
class Transpose2DSpec:
    outer: int       # outer dims around the 2-D block
    tile_rows: int   # source rows per tile: `width`, or all rows (fewer than `width`, contiguous dst rows)
    width: int       # lanes per vector = source columns per tile
    item_bytes: int

    @property
    def name(self) -> str:
        return f"transpose2d_o{self.outer}_t{self.tile_rows}_w{self.width}_i{8 * self.item_bytes}"


def transpose2d_kernel(spec: Transpose2DSpec) -> func.FuncOp:
    assert 2 <= spec.tile_rows <= spec.width
    kb = KernelBuilder(spec.name, Signature.of((*TRANSPOSE2D_HEAD, *dim_fields(spec.outer)), buffers=("dst", "src")))
    elem = IntegerType(8 * spec.item_bytes)
    dst, src, dst_off, src_off, rows, cols, dst_stride, src_stride = (kb.fields[n] for n in TRANSPOSE2D_HEAD)
    outer = dims_of(kb, spec.outer)
    w, th = kb.const(spec.width), kb.const(spec.tile_rows)
    tiles = kb.ceil_div(cols, spec.width)
    with kb.loop(kb.begin, kb.end) as item:
        d_off, s_off = outer_offsets(kb, outer, kb.div(item.iv, tiles), dst_off, src_off)
        s0 = kb.mul(kb.rem(item.iv, tiles), w)
        s_off, d_off = kb.add(s_off, s0), kb.add(d_off, kb.mul(s0, dst_stride))  # the tile's first column
        ncols = kb.min(w, kb.sub(cols, s0))
        full = kb.cmp("eq", ncols, w)
        row_end = kb.sub(rows, kb.rem(rows, th))
        with kb.if_(full):
            with kb.loop(0, row_end, spec.tile_rows) as r0:
                vs = [kb.load(src, kb.add(s_off, kb.mul(kb.add(r0.iv, kb.const(i)), src_stride)), spec.width, elem)
                      for i in range(spec.tile_rows)]
                for q in range(spec.tile_rows):  # output chunk q: flat elements q*width .. of [width][tile_rows]
                    j, i = divmod(q * spec.width, spec.tile_rows)
                    chunk = _gather(kb, vs, [divmod(k, spec.tile_rows)[::-1]
                                             for k in range(q * spec.width, (q + 1) * spec.width)], spec.width)
                    kb.store(chunk, dst, kb.add(d_off, kb.add(kb.mul(kb.const(j), dst_stride),
                                                              kb.add(r0.iv, kb.const(i)))), elem)
        with kb.loop(kb.select(full, row_end, kb.const(0)), rows) as r:  # leftover rows, partial tile
            with kb.loop(0, ncols) as s:
                v = kb.load(src, kb.add(s_off, kb.add(kb.mul(r.iv, src_stride), s.iv)), elem=elem)
                kb.store(v, dst, kb.add(d_off, kb.add(kb.mul(s.iv, dst_stride), r.iv)), elem)
    return kb.finish()


def _gather(kb: KernelBuilder, vs, picks, width: int):
    """A vector whose lane l is lane picks[l][1] of vs[picks[l][0]], by chained two-input shuffles."""
    sources = sorted({v for v, _ in picks})
    first, rest = sources[0], sources[1:]
    second = rest.pop(0) if rest else first
    acc = kb.shuffle(vs[first], vs[second], [lane if v == first else width + lane if v == second else 0
                                             for v, lane in picks])
    filled = {first, second}
    for s in rest:
        acc = kb.shuffle(acc, vs[s], [l if picks[l][0] in filled else width + picks[l][1] if picks[l][0] == s
                                      else 0 for l in range(width)])
        filled.add(s)
    return acc
