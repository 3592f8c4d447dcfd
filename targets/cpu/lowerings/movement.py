"""Data movement -> the strided copy kernel (kernels/copy.py), or the blocked 2-D transpose kernel
(kernels/transpose2d.py) when the innermost two dims swap; Transposes that only move size-1 dims
are views.

`emit_copy` is also how the conv and pool lowerings pad their inputs.
"""
from __future__ import annotations

import numpy as np
from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern

from pyflame_rt.dialects import graph, graph_nn as nn
from pyflame_rt.dialects.symbolic import Dim, Shape, dim_mul, numel
from pyflame_rt.errors import UnsupportedOperatorError
from pyflame_rt.targets.cpu.kernels.copy import CopySpec, copy_kernel
from pyflame_rt.targets.cpu.kernels.transpose2d import Transpose2DSpec, transpose2d_kernel
from pyflame_rt.targets.cpu.lowerings.pattern import GraphToKernelPattern
from pyflame_rt.targets.cpu.lowerings.views import alias, split_strides


def strides_of(shape: Shape) -> list[Dim]:
    """Row-major element strides of a contiguous tensor."""
    out: list[Dim] = []
    acc: Dim = 1
    for d in reversed(shape):
        out.append(acc)
        acc = dim_mul(acc, d)
    return out[::-1]


def emit_copy(L, dst, src, dims: list[tuple[Dim, Dim, Dim]], dst_off: Dim = 0, src_off: Dim = 0,
              item_bytes: int = 4) -> None:
    """Copy over dims given as (size, dst_stride, src_stride) in elements, outermost first."""
    if any(size == 0 for size, _, _ in dims):
        return
    merged: list[tuple[Dim, Dim, Dim]] = []
    for size, ds, ss in dims:
        if size == 1:
            continue
        if merged:
            psize, pds, pss = merged[-1]
            if pds == dim_mul(size, ds) and pss == dim_mul(size, ss):
                merged[-1] = (dim_mul(psize, size), ds, ss)
                continue
        merged.append((size, ds, ss))
    merged = merged or [(1, 1, 1)]
    width = max(1, L.target.vector_width * 4 // item_bytes)
    tile_rows = _transpose_tile_rows(merged, width, item_bytes)
    if tile_rows:
        _emit_transpose2d(L, dst, src, merged, dst_off, src_off, tile_rows, width, item_bytes)
        return
    _, ds, ss = merged[-1]
    inner = "vec" if ds == 1 and ss == 1 else "splat" if ds == 1 and ss == 0 else "scalar"
    spec = CopySpec(len(merged), inner, width, item_bytes)
    name = L.kernel(spec.name, lambda: copy_kernel(spec))
    fields = [dst, src, dst_off, src_off] + [x for dim in merged for x in dim]
    L.call(name, fields, numel(tuple(size for size, _, _ in merged[:-1])), work_per_item=merged[-1][0])


def _transpose_tile_rows(merged, width: int, item_bytes: int) -> int:
    """Source rows per tile when the innermost two dims are a 2-D transpose (dst[s, r] = src[r, s])
    the blocked kernel takes, else 0: a full square tile (any row count, static or dynamic) or,
    for fewer static rows than `width`, all rows at once (then the destination rows must be
    contiguous)."""
    if len(merged) < 2 or item_bytes < 4:
        return 0
    (_, dst_row, src_col), (rows, dst_col, _) = merged[-2], merged[-1]
    if src_col != 1 or dst_col != 1:
        return 0
    if not isinstance(rows, int):  # a dynamic row count (a sequence length): rows past the tiles go one by one
        return width
    return 0 if rows < 2 else width if rows >= width else rows if dst_row == rows else 0


def _emit_transpose2d(L, dst, src, merged, dst_off, src_off, tile_rows: int, width: int,
                      item_bytes: int) -> None:
    (cols, dst_stride, _), (rows, _, src_stride) = merged[-2], merged[-1]
    spec = Transpose2DSpec(len(merged) - 2, tile_rows, width, item_bytes)
    name = L.kernel(spec.name, lambda: transpose2d_kernel(spec))
    fields = [dst, src, dst_off, src_off, rows, cols, dst_stride, src_stride] + [x for dim in merged[:-2] for x in dim]
    outer = numel(tuple(size for size, _, _ in merged[:-2]))
    L.call(name, fields, ("mul", outer, ("ceildiv", cols, width)), work_per_item=rows * width)


def emit_pad(L, src, shape: Shape, pads: list[int], mode: str = "constant", value: float = 0.0, out=None,
             dtype=np.float32):
    """Pad a contiguous tensor into `out` (default: a new arena buffer); returns (loc, padded shape)."""
    rank = len(shape)
    size = np.dtype(dtype).itemsize
    padded = tuple(d if pads[i] == 0 and pads[rank + i] == 0 else d + pads[i] + pads[rank + i]
                   for i, d in enumerate(shape))
    if out is None:
        out = L.new_buffer(dim_mul(numel(padded), size))
    ost, ist = strides_of(padded), strides_of(shape)
    interior = sum(pads[i] * ost[i] for i in range(rank))
    if mode == "constant":
        if any(pads):
            fill = L.add_weight("pad_value", np.array([value], dtype))
            emit_copy(L, out, fill, [(numel(padded), 1, 0)], item_bytes=size)
        emit_copy(L, out, src, [(d, ost[i], ist[i]) for i, d in enumerate(shape)], dst_off=interior,
                  item_bytes=size)
        return out, padded
    emit_copy(L, out, src, [(d, ost[i], ist[i]) for i, d in enumerate(shape)], dst_off=interior,
              item_bytes=size)
    # border slabs along each axis, read from the already filled part of the output
    for a in range(rank):
        b, e = pads[a], pads[rank + a]
        if b == 0 and e == 0:
            continue
        d = shape[a]
        region = [(padded[i] if i < a else shape[i], ost[i]) for i in range(rank)]
        base = sum(pads[i] * ost[i] for i in range(a + 1, rank))  # interior start of later axes
        step = 0 if mode == "edge" else -1
        # (count, first position, first source position): edge repeats the border element,
        # reflect mirrors around it
        slabs = ((b, 0, b if mode == "edge" else 2 * b), (e, b + d, b + d - 1 if mode == "edge" else b + d - 2))
        for count, first, src_first in slabs:
            if count == 0:
                continue
            dims = [(count, st, step * st) if i == a else (size, st, st) for i, (size, st) in enumerate(region)]
            emit_copy(L, out, out, dims, dst_off=base + first * ost[a], src_off=base + src_first * ost[a],
                      item_bytes=size)
    return out, padded


class LowerPad(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.PadOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: nn.PadOp) -> None:
        pads = [int(p) for p in op.pads.get_values()]
        emit_pad(L, L.loc(op.input), L.shapes[op.input], pads, op.mode.data, op.value.value.data,
                 out=L.result_loc(op.result), dtype=L.dtype(op.result).numpy)


class LowerConcat(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.ConcatOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: nn.ConcatOp) -> None:
        out_shape = L.shapes[op.result]
        axis = op.axis.value.data % len(out_shape)
        out = L.result_loc(op.result)
        ost = strides_of(out_shape)
        offset: Dim = 0
        for v in op.inputs:
            shape = L.shapes[v]
            ist = strides_of(shape)
            if v not in L.in_place:  # else its producer already wrote it into its slice of `out`
                emit_copy(L, out, L.loc(v), [(d, ost[i], ist[i]) for i, d in enumerate(shape)], dst_off=offset,
                          item_bytes=L.dtype(op.result).itemsize)
            offset = dim_mul(shape[axis], ost[axis]) if offset == 0 else _add(offset, dim_mul(shape[axis], ost[axis]))


def _add(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    raise UnsupportedOperatorError("Concat offsets along a dynamic dim are not supported")


def moves_only_unit_dims(shape: Shape, perm: list[int]) -> bool:
    """The transpose keeps the order of the dims that are not 1: the bytes do not move."""
    kept = [p for p in perm if shape[p] != 1]
    return kept == sorted(kept)


class LowerTranspose(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.TransposeOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: nn.TransposeOp) -> None:
        perm = [int(p) for p in op.perm.get_values()]
        shape = L.shapes[op.input]
        strided = L.strides.get(op.input)
        if moves_only_unit_dims(shape, perm) and strided is None:  # [N, 1, 1, C] -> [N, C, 1, 1] after a global pool
            alias(L, op)
            return
        ist, ost = strided or strides_of(shape), strides_of(L.shapes[op.result])
        emit_copy(L, L.result_loc(op.result), L.loc(op.input),
                  [(shape[p], ost[i], ist[p]) for i, p in enumerate(perm)], item_bytes=L.dtype(op.result).itemsize)


class LowerSlice(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.SliceOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: nn.SliceOp) -> None:
        shape = L.shapes[op.input]
        sl = op.per_axis(shape)
        ist, out_shape = strides_of(shape), L.shapes[op.result]
        ost = strides_of(out_shape)
        src_off: Dim = 0
        dims = []
        for i, d in enumerate(out_shape):
            first, _, step = sl.get(i, (0, d, 1))
            if first:
                src_off = _add(src_off, dim_mul(first, ist[i])) if src_off else dim_mul(first, ist[i])
            dims.append((d, ost[i], dim_mul(step, ist[i]) if step != 1 else ist[i]))
        item = L.dtype(op.result).itemsize
        src, view_strides = L.loc(op.input), [ss for _, _, ss in dims]
        if isinstance(src_off, int) and _read_only_by_transposes(L, op.result, view_strides):
            L.place_view(op.result, src, src_off * item, view_strides)
            return
        emit_copy(L, L.result_loc(op.result), src, dims, src_off=src_off, item_bytes=item)


def _read_only_by_transposes(L, v, strides: list[Dim]) -> bool:
    """Whether v can stay a strided view of its source: every reader, through Reshapes that only
    split dims, is a Transpose (a copy that takes any source strides) and none is a graph output.
    Attention's Q / K / V: Split -> Reshape [.., heads, dim] -> Transpose, one copy instead of two."""
    if v in L.out_slot or not v.uses:
        return False
    for use in v.uses:
        user = use.operation
        if isinstance(user, graph.ReshapeOp):
            inner = split_strides(L.shapes[v], strides, L.shapes[user.result])
            if inner is None or not _read_only_by_transposes(L, user.result, inner):
                return False
        elif not isinstance(user, nn.TransposeOp):
            return False
    return True


class LowerTile(GraphToKernelPattern):
    """Output viewed as [r0, d0, r1, d1, ...]: the repeat dims read with source stride 0."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.TileOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: nn.TileOp) -> None:
        shape = L.shapes[op.input]
        reps = op.repeat_dims()
        ist = strides_of(shape)
        split = tuple(x for r, d in zip(reps, shape) for x in (r, d))
        ost = strides_of(split)
        dims = [(size, ost[j], 0 if j % 2 == 0 else ist[j // 2]) for j, size in enumerate(split)]
        emit_copy(L, L.result_loc(op.result), L.loc(op.input), dims, item_bytes=L.dtype(op.result).itemsize)


PATTERNS = (LowerPad, LowerConcat, LowerTranspose, LowerSlice, LowerTile)
