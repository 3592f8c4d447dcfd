"""Reductions, ArgMax/ArgMin, Softmax/LogSoftmax and LayerNorm -> row kernels (kernels/rows.py)."""
from __future__ import annotations

import numpy as np
from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern

from pyflame_rt.dialects import graph_reduce as gr
from pyflame_rt.dialects.symbolic import Shape, dim_mul, numel
from pyflame_rt.errors import UnsupportedOperatorError
from pyflame_rt.limits import check_compile_array
from pyflame_rt.targets.cpu.kernels.rows import (
    ROW_FIELDS, RUNNING_KINDS, TOPK_FIELDS, RowSpec, TopKSpec, reduces_across, row_kernel, topk_kernel)
from pyflame_rt.targets.cpu.lowerings.pattern import GraphToKernelPattern


def emit_rows(L, kind: str, src, dst, shape: Shape, first: int, last: int, dtype, params=(),
              scale=None, bias=None, mean=None, rstd=None) -> None:
    """Run a row kernel over `shape` viewed as [outer, R, inner], R = dims first..last (inclusive);
    scale, bias, mean, rstd: the buffers of the kinds that read or write them."""
    outer, r, inner = numel(shape[:first]), numel(shape[first:last + 1]), numel(shape[last + 1:])
    vw = L.target.vector_width
    across = isinstance(inner, int) and inner >= vw and reduces_across(kind)
    width = vw if (inner == 1 and kind not in RUNNING_KINDS) or across else 1
    spec = RowSpec(kind, dtype, width, tuple(params), across)
    name = L.kernel(spec.name, lambda: row_kernel(spec))
    buffers = {"scale": scale, "bias": bias, "mean": mean, "rstd": rstd}
    fields = {"in": src, "out": dst, "r": r, "inner": inner,
              **{k: L.null_buffer if b is None else b for k, b in buffers.items()}}
    L.call(name, [fields[f] for f in ROW_FIELDS], ("mul", outer, -(-inner // vw) if across else inner), r)


def _contiguous_groups(axes: tuple[int, ...]) -> list[tuple[int, int]]:
    groups: list[list[int]] = []
    for a in axes:
        if groups and groups[-1][1] == a - 1:
            groups[-1][1] = a
        else:
            groups.append([a, a])
    return [(g[0], g[1]) for g in groups]


class LowerReduce(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gr.ReduceOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gr.ReduceOp) -> None:
        shape, dtype, kind = L.shapes[op.input], L.dtype(op.input), op.kind.data
        out = L.result_loc(op.result)
        groups = _contiguous_groups(op.axes_for(len(shape)))
        if not groups:
            L.emit_elementwise("copy", [op.input], out, L.shapes[op.result])
            return
        if len(groups) > 1 and kind not in ("sum", "max", "min", "prod"):
            # not composable group by group (mean, norms, log-sum-exp): move the reduced axes last
            # (a strided copy keeping the kept axes in order, so the rows' results are the output)
            axes = op.axes_for(len(shape))
            perm = [d for d in range(len(shape)) if d not in axes] + list(axes)
            strides = [numel(shape[d + 1:]) for d in range(len(shape))]
            moved = tuple(shape[d] for d in perm)
            tmp = L.new_buffer(dim_mul(numel(shape), dtype.itemsize))
            L.emit_strided("copy", [L.loc(op.input)], (dtype,), [[strides[d]] for d in perm], tmp, moved, dtype)
            emit_rows(L, kind, tmp, out, moved, len(shape) - len(axes), len(shape) - 1, dtype)
            return
        src, cur = L.loc(op.input), list(shape)
        for k, (first, last) in enumerate(reversed(groups)):
            reduced = cur[:first] + [1] * (last - first + 1) + cur[last + 1:]
            dst = out if k == len(groups) - 1 else L.new_buffer(dim_mul(numel(tuple(reduced)), dtype.itemsize))
            emit_rows(L, kind, src, dst, tuple(cur), first, last, dtype)
            src, cur = dst, reduced


class LowerArg(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gr.ArgReduceOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gr.ArgReduceOp) -> None:
        shape, kind = L.shapes[op.input], op.kind.data
        axis = op.axis_in(len(shape))
        L.expect_nonempty(shape[axis], f"{'ArgMax' if kind == 'argmax' else 'ArgMin'} along axis {axis} of an input of "
                                       f"shape [{', '.join(map(str, shape))}]: the axis is empty (no index to return)",
                          numel(shape[:axis] + shape[axis + 1:]))
        emit_rows(L, kind, L.loc(op.input), L.result_loc(op.result), shape, axis, axis, L.dtype(op.input),
                  (int(op.select_last_index.value.data),))


class LowerSoftmax(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gr.SoftmaxOp | gr.LogSoftmaxOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op) -> None:
        shape = L.shapes[op.input]
        kind = "softmax" if isinstance(op, gr.SoftmaxOp) else "log_softmax"
        if op.legacy.value.data:  # coerced to 2-D: rows are everything from axis on
            axis = op.axis.value.data % len(shape) if op.axis.value.data < 0 else op.axis.value.data
            first, last = axis, len(shape) - 1
        else:
            first = last = op.axis_in(len(shape))
        if first > last:  # axis == rank: rows of one element
            first = last = len(shape) - 1
        emit_rows(L, kind, L.loc(op.input), L.result_loc(op.result), shape, first, last, L.dtype(op.input))


def _norm_param(L, v, norm_shape: Shape, what: str):
    """Scale / bias as storage of exactly prod(normalized dims) elements."""
    const = L.const_value(v)
    if const is not None:
        if not all(isinstance(d, int) for d in norm_shape):
            raise UnsupportedOperatorError(f"LayerNorm over dynamic dims with a constant {what}")
        check_compile_array(numel(norm_shape) * const.itemsize, f"LayerNorm {what} {list(norm_shape)}")
        return L.add_weight(what, np.ascontiguousarray(np.broadcast_to(const, norm_shape)))
    if tuple(L.shapes[v]) != tuple(norm_shape):
        raise UnsupportedOperatorError(f"LayerNorm {what} {list(map(str, L.shapes[v]))} must match the "
                                       f"normalized dims {list(map(str, norm_shape))}")
    return L.loc(v)


class LowerLayerNorm(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gr.LayerNormOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gr.LayerNormOp) -> None:
        shape, dtype = L.shapes[op.input], L.dtype(op.input)
        axis = op.axis_in(len(shape))
        norm = shape[axis:]
        L.expect_nonempty(numel(norm), f"LayerNormalization (axis {axis}) of an input of shape "
                                       f"[{', '.join(map(str, shape))}]: the normalized dims are empty")
        scale = _norm_param(L, op.scale, norm, "scale")
        if op.bias is not None:
            bias = _norm_param(L, op.bias, norm, "bias")
        else:
            if not all(isinstance(d, int) for d in norm):
                raise UnsupportedOperatorError("LayerNorm without bias over dynamic dims")
            check_compile_array(numel(norm) * dtype.itemsize, f"LayerNorm bias {list(norm)}")
            bias = L.add_weight("bias", np.zeros(norm, dtype.numpy))
        stats = [L.result_loc(v) for v in (op.mean, op.inv_std_dev)] if op.mean is not None else [None, None]
        emit_rows(L, "layer_norm", L.loc(op.input), L.result_loc(op.result), shape, axis, len(shape) - 1, dtype,
                  (op.epsilon.value.data, op.mean is not None), scale, bias, *stats)


class LowerCumsum(GraphToKernelPattern):
    kind = "cumsum"

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gr.CumSumOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gr.CumulativeOp) -> None:
        shape = L.shapes[op.input]
        axis = op.axis_in(len(shape))
        emit_rows(L, self.kind, L.loc(op.input), L.result_loc(op.result), shape, axis, axis, L.dtype(op.input),
                  (op.exclusive.value.data, op.reverse.value.data))


class LowerTopk(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gr.TopKOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gr.TopKOp) -> None:
        shape = L.shapes[op.input]
        axis = op.axis_in(len(shape))
        spec = TopKSpec(L.dtype(op.input), op.largest.value.data)
        name = L.kernel(spec.name, lambda: topk_kernel(spec))
        inner = numel(shape[axis + 1:])
        f = {"in": L.loc(op.input), "values": L.result_loc(op.values), "indices": L.result_loc(op.indices),
             "r": shape[axis], "inner": inner, "k": op.k_dim()}
        L.call(name, [f[n] for n in TOPK_FIELDS], ("mul", numel(shape[:axis]), inner),
               dim_mul(shape[axis], op.k_dim()))


class LowerCumprod(LowerCumsum):
    kind = "cumprod"

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gr.CumProdOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)


PATTERNS = (LowerReduce, LowerArg, LowerSoftmax, LowerLayerNorm, LowerCumsum, LowerCumprod, LowerTopk)
