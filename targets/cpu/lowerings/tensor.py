"""Gather, symbolic dim values, dims bound from values, NonZero, Unique, ConstantOfShape, Expand, Range, Trilu
and Einsum lowerings."""
from __future__ import annotations

from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern

from pyflame_rt.dialects import graph_tensor as gt
from pyflame_rt.dialects.symbolic import Dim, Shape, dim_mul, numel
from pyflame_rt.dtype import DType
from pyflame_rt.errors import UnsupportedOperatorError
from pyflame_rt.targets.cpu.kernels.indexing import (
    GATHER_FIELDS, TRILU_FIELDS, GatherSpec, RangeSpec, TriluSpec, count_nonzero_kernel, gather_kernel,
    nonzero_kernel, range_kernel, store_dims_kernel, store_dims_name, trilu_kernel)
from pyflame_rt.targets.cpu.kernels.typed import SINGLE_PRECISION
from pyflame_rt.targets.cpu.kernels.unique import (
    UNIQUE_GROUPS_FIELDS, UNIQUE_WRITE_FIELDS, UniqueSpec, unique_groups_kernel, unique_write_kernel)
from pyflame_rt.targets.cpu.lowerings.pattern import GraphToKernelPattern
from pyflame_rt.targets.cpu.lowerings.reduce import emit_rows
from pyflame_rt.targets.cpu.lowerings.views import alias


class LowerDimValues(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gt.DimValuesOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gt.DimValuesOp) -> None:
        dtype = L.dtype(op.result)
        values = list(gt.attr_dims(op.values))
        name = L.kernel(store_dims_name(dtype, len(values)), lambda: store_dims_kernel(dtype, len(values)))
        L.call(name, [L.result_loc(op.result), *values], 1)


class LowerBindDims(GraphToKernelPattern):
    """The result aliases the input (copied where the input is not a dense tensor the run can read
    from: a strided view, a weight); the dims are bound from it once the launches so far ran."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gt.BindDimsOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gt.BindDimsOp) -> None:
        src = op.input
        if src in L.strides or L.loc(src).kind not in ("io", "arena"):
            L.emit_elementwise("copy", [src], L.result_loc(op.result), L.shapes[src])
        else:
            alias(L, op)
        L.bind_dims(op.dim_names(), L.loc(op.result), L.dtype(src))


class LowerNonZero(GraphToKernelPattern):
    """Two single-item kernels: the count, into a buffer the run binds the result's `count` dim
    from, then the coordinates into the result the count sizes."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gt.NonZeroOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gt.NonZeroOp) -> None:
        shape, dtype = L.shapes[op.input], L.dtype(op.input)
        count = L.new_buffer(8)
        name = L.kernel(f"count_nonzero_{dtype.value}", lambda: count_nonzero_kernel(dtype))
        L.call(name, [L.loc(op.input), count, numel(shape)], 1)
        L.bind_dims([op.count.data], count, DType.INT64)
        name = L.kernel(f"nonzero_{dtype.value}_r{len(shape)}", lambda: nonzero_kernel(dtype, len(shape)))
        L.call(name, [L.loc(op.input), L.result_loc(op.result), L.shapes[op.result][1], numel(shape), *shape], 1)


class LowerUnique(GraphToKernelPattern):
    """Two single-item kernels: the groups, their number into a buffer the run binds the results'
    `count` dim from, then the four results the count sizes."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gt.UniqueOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gt.UniqueOp) -> None:
        shape, dtype = L.shapes[op.input], L.dtype(op.input)
        axis = op.axis_in(len(shape))
        n, outer, inner = (numel(shape), 1, 1) if axis is None else (shape[axis], numel(shape[:axis]),
                                                                       numel(shape[axis + 1:]))
        f = {"in": L.loc(op.input), "work": L.new_buffer(dim_mul(n, 48)), "count": L.new_buffer(8), "n": n,
             "outer": outer, "inner": inner}
        spec = UniqueSpec(dtype, op.sorted.value.data, outer == 1 and inner == 1)
        L.call(L.kernel(spec.name, lambda: unique_groups_kernel(spec)), [f[k] for k in UNIQUE_GROUPS_FIELDS], 1)
        L.bind_dims([op.count.data], f["count"], DType.INT64)
        f.update(out=L.result_loc(op.result), indices=L.result_loc(op.indices),
                 inverse=L.result_loc(op.inverse_indices), counts=L.result_loc(op.counts),
                 unique=L.shapes[op.counts][0])
        name = L.kernel(f"unique_write_{dtype.value}", lambda: unique_write_kernel(dtype))
        L.call(name, [f[k] for k in UNIQUE_WRITE_FIELDS], 1)


class LowerGather(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gt.GatherOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gt.GatherOp) -> None:
        data = L.shapes[op.data]
        axis = op.axis_in(len(data))
        status, code = L.check(f"Gather (axis {axis}): an index is outside [-{data[axis]}, {data[axis]})")
        spec = GatherSpec(L.dtype(op.data), L.dtype(op.indices), L.target.vector_width)
        name = L.kernel(spec.name, lambda: gather_kernel(spec))
        nidx = numel(L.shapes[op.indices])
        inner = numel(data[axis + 1:])
        f = {"data": L.loc(op.data), "indices": L.loc(op.indices), "out": L.result_loc(op.result),
             "axis_size": data[axis], "num_indices": nidx, "inner": inner, "status": status, "code": code}
        L.call(name, [f[k] for k in GATHER_FIELDS], ("mul", numel(data[:axis]), nidx), inner)


class LowerConstantOfShape(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gt.ConstantOfShapeOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gt.ConstantOfShapeOp) -> None:
        L.emit_elementwise("fill", [], L.result_loc(op.result), L.shapes[op.result], L.dtype(op.result),
                           (op.value.value.data,))


class LowerExpand(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gt.ExpandOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gt.ExpandOp) -> None:
        L.emit_elementwise("copy", [op.input], L.result_loc(op.result), L.shapes[op.result])


class LowerRange(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gt.RangeOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gt.RangeOp) -> None:
        spec = RangeSpec(L.dtype(op.result), op.start.value.data, op.delta.value.data)
        name = L.kernel(spec.name, lambda: range_kernel(spec))
        L.call(name, [L.result_loc(op.result)], L.shapes[op.result][0])


class LowerTrilu(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gt.TriluOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gt.TriluOp) -> None:
        shape = L.shapes[op.input]
        spec = TriluSpec(L.dtype(op.input), op.upper.value.data, L.target.vector_width)
        name = L.kernel(spec.name, lambda: trilu_kernel(spec))
        f = {"in": L.loc(op.input), "out": L.result_loc(op.result), "rows": shape[-2], "cols": shape[-1],
             "k": op.k.value.data}
        L.call(name, [f[k] for k in TRILU_FIELDS], numel(shape[:-1]), shape[-1])
# ------------------------------------------------------------------ einsum


def _contiguous_strides(shape: Shape) -> list[Dim]:
    return [numel(shape[i + 1:]) for i in range(len(shape))]


def _permute(L, src, src_term: str, src_shape: Shape, dst_term: str, sizes: dict, dtype, dst=None, to=None):
    """Copy src (letters src_term) into a new contiguous buffer ordered by dst_term, converted to
    the element type `to` (default: unchanged)."""
    to = to or dtype
    if src_term == dst_term and dst is None and to is dtype:
        return src
    strides: dict[str, Dim] = {}
    for c, s in zip(src_term, _contiguous_strides(src_shape)):
        if c in strides:  # a repeated letter walks the diagonal: its strides add up
            if not (isinstance(s, int) and isinstance(strides[c], int)):
                raise UnsupportedOperatorError(f"einsum diagonal over '{c}' with dynamic inner dims")
            s += strides[c]
        strides[c] = s
    for c, d in zip(src_term, src_shape):
        if d == 1 and sizes[c] != 1:
            strides[c] = 0  # broadcast letter
    out_shape = tuple(sizes[c] for c in dst_term)
    dst = dst or L.new_buffer(dim_mul(numel(out_shape), to.itemsize))
    L.emit_strided("copy" if to is dtype else "cast", [src], (dtype,), [[strides[c]] for c in dst_term], dst,
                   out_shape, to)
    return dst


class LowerEinsum(GraphToKernelPattern):
    """Two operands: permute to [batch, m, k] x [batch, k, n], one batched GEMM, permute the result.
    One operand: a transpose (a repeated letter reads the diagonal: its strides add up), and a row
    sum over the letters that disappear."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gt.EinsumOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gt.EinsumOp) -> None:
        shapes = [L.shapes[v] for v in op.inputs]
        terms, out_term = gt.parse_einsum(op.equation.data, [len(s) for s in shapes])
        if len(terms) > 1 and any(len(set(t)) != len(t) for t in terms):
            raise UnsupportedOperatorError(f"einsum '{op.equation.data}': repeated letters (traces/diagonals) "
                                           f"within one of two operands")
        sizes: dict[str, Dim] = {}
        for t, s in zip(terms, shapes):
            for c, d in zip(t, s):
                if c not in sizes or sizes[c] == 1:
                    sizes[c] = d
        dtype = L.dtype(op.result)
        out = L.result_loc(op.result)
        locs = [L.loc(v) for v in op.inputs]
        if len(terms) == 1:
            summed = "".join(dict.fromkeys(c for c in terms[0] if c not in out_term))
            if not summed:
                _permute(L, locs[0], terms[0], shapes[0], out_term, sizes, dtype, dst=out)
                return
            order = out_term + summed
            tmp = _permute(L, locs[0], terms[0], shapes[0], order, sizes, dtype)
            emit_rows(L, "sum", tmp, out, tuple(sizes[c] for c in order), len(out_term), len(order) - 1, dtype)
            return
        a, b = terms
        batch = "".join(c for c in out_term if c in a and c in b)
        m = "".join(c for c in out_term if c in a and c not in b)
        n = "".join(c for c in out_term if c in b and c not in a)
        k = "".join(c for c in a if c in b and c not in out_term)
        if any(c not in out_term and c not in k for c in a + b):
            raise UnsupportedOperatorError(f"einsum '{op.equation.data}': a letter summed within one operand")
        for c in batch:
            if any(s[t.index(c)] != sizes[c] for t, s in zip(terms, shapes)):
                raise UnsupportedOperatorError(f"einsum '{op.equation.data}': broadcast batch letter '{c}'")
        # float16 / bfloat16 operands are widened to float32 by the permuting copies (the GEMM's type)
        work = DType.FLOAT32 if dtype in SINGLE_PRECISION else dtype
        if work not in (DType.FLOAT32, DType.FLOAT64):
            raise UnsupportedOperatorError(f"einsum with two operands needs float tensors, got {dtype.value}")
        a_loc = _permute(L, locs[0], a, shapes[0], batch + m + k, sizes, dtype, to=work)
        b_loc = _permute(L, locs[1], b, shapes[1], batch + k + n, sizes, dtype, to=work)
        nb, nm, nk, nn = (numel(tuple(sizes[c] for c in g)) for g in (batch, m, k, n))
        direct = out_term == batch + m + n and work is dtype
        c_loc = out if direct else L.new_buffer(dim_mul(numel(tuple(sizes[c] for c in out_term)), work.itemsize))
        L.emit_gemm(a=a_loc, a_strides=(nk, 1), m=nm, k=nk, n=nn, out=c_loc, batch=nb, a_bs=dim_mul(nm, nk),
                    b_value=b_loc, b_strides=(nn, 1, dim_mul(nk, nn)), b_batch=nb, dtype=work)
        if not direct:
            mid = batch + m + n
            _permute(L, c_loc, mid, tuple(sizes[c] for c in mid), out_term, sizes, work, dst=out, to=dtype)


PATTERNS = (LowerDimValues, LowerBindDims, LowerNonZero, LowerUnique, LowerGather, LowerConstantOfShape, LowerExpand,
            LowerRange, LowerTrilu, LowerEinsum)
