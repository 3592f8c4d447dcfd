"""GatherElements / ScatterElements / GatherND / ScatterND / MaxUnpool lowerings: one parameterized
index kernel (kernels/indexing.py `index_kernel`) over (row, lane) work items; scatters first copy
the data into the result (MaxUnpool: zeros), then combine the updates into it."""
from __future__ import annotations

import numpy as np
from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern

from pyflame_rt.dialects import graph_index as gi, graph_pool_indices as pi
from pyflame_rt.dialects.symbolic import Dim, dim_mul, numel
from pyflame_rt.errors import UnsupportedOperatorError
from pyflame_rt.targets.cpu.kernels.indexing import EXPECT_FIELDS, INDEX_FIELDS, IndexSpec, expect_kernel, index_kernel
from pyflame_rt.targets.cpu.lowerings.pattern import GraphToKernelPattern
from pyflame_rt.targets.cpu.lowerings.movement import emit_pad


def _emit(L, op, what: str, data, indices, other, *, rows: Dim, tuples: Dim, inner: Dim, idx_row: Dim,
          idx_lane: int, data_outer: Dim, axes: list[tuple[Dim, Dim]], reduction: str | None = None,
          from_end: bool = True) -> None:
    """One index-kernel call over rows * inner lanes; axes = (size, stride) of each indexed data axis."""
    sizes = ", ".join(f"[{f'-{s}' if from_end else 0}, {s})" for s, _ in axes)
    status, code = L.check(f"{what}: an index is outside its axis ({sizes})")
    spec = IndexSpec(L.dtype(op.results[0]), L.dtype(op.indices), len(axes), reduction is not None,
                     reduction or "none", from_end)
    name = L.kernel(spec.name, lambda: index_kernel(spec))
    f = {"data": data, "indices": L.loc(indices), "other": other, "status": status, "code": code,
         "tuples": tuples, "inner": inner, "idx_row": idx_row, "idx_lane": idx_lane, "data_outer": data_outer}
    L.call(name, [f[k] for k in INDEX_FIELDS] + [x for axis in axes for x in axis], ("mul", rows, inner), tuples)


def _copy_data(L, op):
    """Scatters: the result starts as a copy of data."""
    out = L.result_loc(op.result)
    L.emit_elementwise("copy", [op.data], out, L.shapes[op.data])
    return out


def _elements(L, op, what: str, data, other, reduction: str | None = None) -> None:
    shape = L.shapes[op.data]
    axis = gi.elements_layout(shape, L.shapes[op.indices], op.axis.value.data)
    inner = numel(shape[axis + 1:])
    _emit(L, op, f"{what} (axis {axis})", data, op.indices, other, rows=numel(shape[:axis]),
          tuples=L.shapes[op.indices][axis], inner=inner, idx_row=inner, idx_lane=1,
          data_outer=dim_mul(shape[axis], inner), axes=[(shape[axis], inner)], reduction=reduction)


class LowerGatherElements(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gi.GatherElementsOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gi.GatherElementsOp) -> None:
        _elements(L, op, "GatherElements", L.loc(op.data), L.result_loc(op.result))


class LowerScatterElements(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gi.ScatterElementsOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gi.ScatterElementsOp) -> None:
        out = _copy_data(L, op)
        _elements(L, op, "ScatterElements", out, L.loc(op.updates), op.reduction.data)


def _nd(L, op, what: str, data, other, batch_dims: int, reduction: str | None = None) -> None:
    shape, idx = L.shapes[op.data], L.shapes[op.indices]
    k = gi.nd_layout(shape, idx, batch_dims)
    axes = [(shape[d], numel(shape[d + 1:])) for d in range(batch_dims, batch_dims + k)]
    _emit(L, op, what, data, op.indices, other, rows=numel(shape[:batch_dims]), tuples=numel(idx[batch_dims:-1]),
          inner=numel(shape[batch_dims + k:]), idx_row=k, idx_lane=0, data_outer=numel(shape[batch_dims:]),
          axes=axes, reduction=reduction)


class LowerGatherND(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gi.GatherNDOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gi.GatherNDOp) -> None:
        _nd(L, op, "GatherND", L.loc(op.data), L.result_loc(op.result), op.batch_dims.value.data)


class LowerScatterND(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gi.ScatterNDOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gi.ScatterNDOp) -> None:
        out = _copy_data(L, op)
        _nd(L, op, "ScatterND", out, L.loc(op.updates), 0, op.reduction.data)


class LowerMaxUnpool(GraphToKernelPattern):
    """Zeros, then one sequential scatter of every input element at its flat index (indices may
    address any plane, so the writes are not split between work items); a box smaller than the
    output is scattered apart and then zero-padded at the end into the output."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: pi.MaxUnpoolOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: pi.MaxUnpoolOp) -> None:
        shape, dtype = L.shapes[op.result], L.dtype(op.result)
        if op.shape is not None:
            _expect_shape(L, "MaxUnpool: output_shape", op.shape, shape)
        box_shape = (*shape[:2], *op.index_box)
        padded = tuple(box_shape) != tuple(shape)
        out = L.result_loc(op.result)
        box = L.new_buffer(dim_mul(numel(box_shape), dtype.itemsize)) if padded else out
        L.emit_elementwise("fill", [], box, box_shape, dtype, (0.0,))
        total = numel(box_shape)
        _emit(L, op, "MaxUnpool", box, op.indices, L.loc(op.input), rows=1, tuples=numel(L.shapes[op.input]),
              inner=1, idx_row=1, idx_lane=0, data_outer=total, axes=[(total, 1)], reduction="none", from_end=False)
        if padded:
            ends = [s - b for s, b in zip(shape, box_shape)]
            emit_pad(L, box, box_shape, [0] * len(shape) + ends, out=out, dtype=dtype.numpy)


def _expect_shape(L, what: str, fed, shape) -> None:
    """A run-time check that the shape tensor `fed` equals the static `shape`."""
    if not all(isinstance(d, int) for d in shape):
        raise UnsupportedOperatorError(f"a shape argument fed at run time needs a static output shape, got "
                                       f"{list(map(str, shape))}")
    status, code = L.check(f"{what} must be {list(shape)}, the shape the model declares")
    name = L.kernel("expect_i64", expect_kernel)
    f = {"values": L.loc(fed), "expected": L.add_weight("expected_shape", np.array(shape, np.int64)),
         "count": len(shape), "status": status, "code": code}
    L.call(name, [f[k] for k in EXPECT_FIELDS], 1)


PATTERNS = (LowerGatherElements, LowerScatterElements, LowerGatherND, LowerScatterND, LowerMaxUnpool)
