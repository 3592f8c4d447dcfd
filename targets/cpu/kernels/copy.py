"""N-d strided copy: dst[dst_off + sum(i_d * dst_stride_d)] = src[src_off + sum(i_d * src_stride_d)].

The data-movement ops are all this one kernel with different strides: Transpose
(permuted source strides), Slice (offset + step * stride, negative for reversed
slices), Concat / Split (destination / source offset into the larger tensor),
Tile (source stride 0 on the repeat dims), Pad (constant fill = stride-0 source,
edge = stride 0, reflect = negative stride, copying from the output into itself)
and constant fills. Strides and sizes are run-time fields (symbolic batch); the
innermost dim is vectorized when both inner strides are 1 ("vec") or the source
is broadcast ("splat"), else it runs element by element ("scalar"). Work items
are rows (all dims but the innermost). Elements are copied as integers of the
tensor's item size, so one kernel serves every dtype.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerType

from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature

COPY_HEAD = ("dst", "src", "dst_off", "src_off")  # then per dim: size, dst_stride, src_stride
INNER_MODES = ("vec", "splat", "scalar")


def dim_fields(rank: int) -> list[str]:
    """Per dim, outermost first: its size, dst stride and src stride."""
    return [f"{p}{d}" for d in range(rank) for p in ("size", "dst_stride", "src_stride")]


def dims_of(kb: KernelBuilder, rank: int) -> list[tuple]:
    """The (size, dst_stride, src_stride) fields of each dim."""
    f = kb.fields
    return [(f[f"size{d}"], f[f"dst_stride{d}"], f[f"src_stride{d}"]) for d in range(rank)]


@dataclass(frozen=True)
class CopySpec:
    rank: int
    inner: str
    width: int       # lanes per vector
    item_bytes: int  # 1, 2, 4 or 8

    @property
    def name(self) -> str:
        return f"copy_r{self.rank}_{self.inner}_w{self.width}_i{8 * self.item_bytes}"


def outer_offsets(kb: KernelBuilder, dims, index, dst_off, src_off):
    """(dst, src) offsets of a flat `index` over dims (size, dst_stride, src_stride), outermost first."""
    for size, ds, ss in reversed(dims):
        idx = kb.rem(index, size)
        index = kb.div(index, size)
        dst_off, src_off = kb.add(dst_off, kb.mul(idx, ds)), kb.add(src_off, kb.mul(idx, ss))
    return dst_off, src_off


def copy_kernel(spec: CopySpec) -> func.FuncOp:
    assert spec.inner in INNER_MODES and spec.rank >= 1
    kb = KernelBuilder(spec.name, Signature.of((*COPY_HEAD, *dim_fields(spec.rank)), buffers=("dst", "src")))
    elem = IntegerType(8 * spec.item_bytes)
    dst, src, dst_off, src_off = (kb.fields[n] for n in COPY_HEAD)
    dims = dims_of(kb, spec.rank)
    inner_size, inner_ds, inner_ss = dims[-1]
    with kb.loop(kb.begin, kb.end) as item:
        d_off, s_off = outer_offsets(kb, dims[:-1], item.iv, dst_off, src_off)

        def step(iv, w):
            if spec.inner == "vec":
                kb.store(kb.load(src, kb.add(s_off, iv), w, elem), dst, kb.add(d_off, iv), elem)
            elif spec.inner == "splat":
                kb.store(kb.splat(kb.load(src, s_off, elem=elem), w), dst, kb.add(d_off, iv), elem)
            else:
                kb.store(kb.load(src, kb.add(s_off, kb.mul(iv, inner_ss)), elem=elem), dst,
                         kb.add(d_off, kb.mul(iv, inner_ds)), elem)

        kb.strip_mined(kb.const(0), inner_size, spec.width if spec.inner != "scalar" else 1, step)
    return kb.finish()
