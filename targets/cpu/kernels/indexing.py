"""Index-driven kernels: Gather (with a run-time index check), the element-wise gathers and
scatters (GatherElements / ScatterElements / GatherND / ScatterND, also MaxUnpool), Range, Trilu,
storing symbolic dim values resolved from the dynamic dims, and checking a run-time shape argument.
They move raw elements of any storage type, vectorized where rows are contiguous.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from xdsl.dialects import func, llvm
from xdsl.dialects.builtin import i1, i64

from pyflame_rt.dtype import DType
from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature
from pyflame_rt.targets.cpu.kernels.typed import Typed, storage_type

GATHER_FIELDS = ("data", "indices", "out", "axis_size", "num_indices", "inner", "status", "code")
TRILU_FIELDS = ("in", "out", "rows", "cols", "k")
EXPECT_FIELDS = ("values", "expected", "count", "status", "code")
# followed by (size, stride) of each of the `k` indexed data axes
INDEX_FIELDS = ("data", "indices", "other", "status", "code", "tuples", "inner", "idx_row", "idx_lane", "data_outer")


def _copy(kb: KernelBuilder, elem, width: int, src, src_off, dst, dst_off, lo, hi) -> None:
    kb.strip_mined(lo, hi, width, lambda iv, w: kb.store(
        kb.load(src, kb.add(src_off, iv), w, elem=elem), dst, kb.add(dst_off, iv), elem=elem))


def _zero(kb: KernelBuilder, elem, width: int, dst, dst_off, lo, hi) -> None:
    kb.strip_mined(lo, hi, width, lambda iv, w: kb.store(kb.vconst(0, elem, w), dst, kb.add(dst_off, iv), elem=elem))


@dataclass(frozen=True)
class GatherSpec:
    dtype: DType
    index_dtype: DType
    width: int

    @property
    def name(self) -> str:
        return f"gather_{self.dtype.value}_{self.index_dtype.value}_w{self.width}"


def gather_kernel(spec: GatherSpec) -> func.FuncOp:
    """Work item (outer, i): copy the slice at indices[i] (negative counts from the end). An index
    outside [-size, size) is never dereferenced: its slice is zeroed and `code` goes to *status."""
    kb = KernelBuilder(spec.name, Signature.of(GATHER_FIELDS, buffers=("data", "indices", "out", "status")))
    f = kb.fields
    data, idx_p, out, status = (f[n] for n in ("data", "indices", "out", "status"))
    elem = storage_type(spec.dtype)
    ti = Typed(kb, DType.INT64, 1)
    with kb.loop(kb.begin, kb.end) as item:
        o, i = kb.div(item.iv, f["num_indices"]), kb.rem(item.iv, f["num_indices"])
        raw = Typed(kb, spec.index_dtype, 1).convert(kb.load(idx_p, i, elem=storage_type(spec.index_dtype)), ti)
        idx = ti.select(ti.cmp("lt", raw, ti.const(0)), ti.add(raw, f["axis_size"]), raw)
        ok = kb._ins(llvm.AndOp(ti.cmp("ge", idx, ti.const(0)), ti.cmp("lt", idx, f["axis_size"])))
        dst_off = kb.mul(item.iv, f["inner"])
        with kb.if_(ok):
            src_off = kb.mul(kb.add(kb.mul(o, f["axis_size"]), idx), f["inner"])
            _copy(kb, elem, spec.width, data, src_off, out, dst_off, kb.const(0), f["inner"])
        with kb.if_(ti.logical_not(ok)):
            _zero(kb, elem, spec.width, out, dst_off, kb.const(0), f["inner"])
            kb.store(f["code"], status, kb.const(0), elem=i64)
    return kb.finish()


@dataclass(frozen=True)
class IndexSpec:
    dtype: DType
    index_dtype: DType
    k: int  # index components per tuple (1 for the *Elements ops)
    scatter: bool
    reduction: str = "none"  # scatters: none / add / mul / max / min
    from_end: bool = True  # negative indices count from the end (else they are out of range)

    @property
    def name(self) -> str:
        kind = f"scatter_{self.reduction}" if self.scatter else "gather"
        return f"index_{kind}_{self.dtype.value}_{self.index_dtype.value}_k{self.k}{'' if self.from_end else '_nonneg'}"


def _combine(t: Typed, reduction: str, old, new):
    return {"none": lambda: new, "add": lambda: t.add(old, new), "mul": lambda: t.mul(old, new),
            "max": lambda: t.max(old, new), "min": lambda: t.min(old, new)}[reduction]()


def index_kernel(spec: IndexSpec) -> func.FuncOp:
    """Work item w is a lane (o, i) = (w / inner, w % inner) that the tuples j of row o visit in
    order (so a scatter never races: lanes address disjoint data). Tuple j's d-th index is
    indices[(o * tuples + j) * idx_row + i * idx_lane + d] (negative counts from size_d); it
    addresses data[o * data_outer + i + sum_d index_d * stride_d], paired with
    other[(o * tuples + j) * inner + i]. Gathers copy data -> other, scatters combine other into
    data. An index outside its axis (or negative, unless `from_end`) is never dereferenced: a
    gather writes 0, and `code` goes to *status."""
    axis_fields = [f"axis{d}_{part}" for d in range(spec.k) for part in ("size", "stride")]
    kb = KernelBuilder(spec.name, Signature.of((*INDEX_FIELDS, *axis_fields),
                                               buffers=("data", "indices", "other", "status")))
    f = kb.fields
    axes = [(f[f"axis{d}_size"], f[f"axis{d}_stride"]) for d in range(spec.k)]
    data, idx_p, other, status = (f[n] for n in ("data", "indices", "other", "status"))
    t, ti, tidx = Typed(kb, spec.dtype, 1), Typed(kb, DType.INT64, 1), Typed(kb, spec.index_dtype, 1)
    with kb.loop(kb.begin, kb.end) as lane:
        o, i = kb.div(lane.iv, f["inner"]), kb.rem(lane.iv, f["inner"])
        base = kb.add(kb.mul(o, f["data_outer"]), i)
        with kb.loop(0, f["tuples"]) as tup:
            row = kb.add(kb.mul(o, f["tuples"]), tup.iv)
            at = kb.add(kb.mul(row, f["idx_row"]), kb.mul(i, f["idx_lane"]))
            ok, off = kb.vconst(1, i1), base
            for d, (size, stride) in enumerate(axes):
                raw = tidx.convert(tidx.load(idx_p, kb.add(at, kb.const(d))), ti)
                idx = kb.select(kb.cmp("slt", raw, kb.const(0)), kb.add(raw, size), raw) if spec.from_end else raw
                ok = kb.and_(ok, kb.in_bounds(idx, size)[0])
                off = kb.add(off, kb.mul(idx, stride))
            pos = kb.add(kb.mul(row, f["inner"]), i)
            with kb.if_(ok):
                if spec.scatter:
                    t.store(_combine(t, spec.reduction, t.load(data, off), t.load(other, pos)), data, off)
                else:
                    t.store(t.load(data, off), other, pos)
            with kb.if_(ti.logical_not(ok)):
                if not spec.scatter:
                    t.store(t.const(0), other, pos)
                kb.store(f["code"], status, kb.const(0), elem=i64)
    return kb.finish()


@dataclass(frozen=True)
class RangeSpec:
    dtype: DType
    start: float
    delta: float

    @property
    def name(self) -> str:
        return f"range_{self.dtype.value}_{hashlib.sha1(repr((self.start, self.delta)).encode()).hexdigest()[:8]}"


def range_kernel(spec: RangeSpec) -> func.FuncOp:
    """out[i] = start + i * delta for i in [begin, end)."""
    kb = KernelBuilder(spec.name, Signature.of(("out",), buffers=("out",)))
    out = kb.fields["out"]
    t = Typed(kb, spec.dtype, 1)
    ti = Typed(kb, DType.INT64, 1)
    with kb.loop(kb.begin, kb.end) as lp:
        i = ti.convert(lp.iv, t)
        t.store(t.fma(i, t.const(spec.delta), t.const(spec.start)), out, lp.iv)
    return kb.finish()


@dataclass(frozen=True)
class TriluSpec:
    dtype: DType
    upper: bool
    width: int

    @property
    def name(self) -> str:
        return f"trilu_{'upper' if self.upper else 'lower'}_{self.dtype.value}_w{self.width}"


def trilu_kernel(spec: TriluSpec) -> func.FuncOp:
    """Work item = one row i of a matrix: keep columns j - i >= k (upper) or <= k (lower)."""
    kb = KernelBuilder(spec.name, Signature.of(TRILU_FIELDS, buffers=("in", "out")))
    f = kb.fields
    src, dst = f["in"], f["out"]
    elem = storage_type(spec.dtype)
    with kb.loop(kb.begin, kb.end) as item:
        i = kb.rem(item.iv, f["rows"])
        edge = kb.add(i, f["k"]) if spec.upper else kb.add(kb.add(i, f["k"]), kb.const(1))
        split = kb.min(kb.max(edge, kb.const(0)), f["cols"])
        off = kb.mul(item.iv, f["cols"])
        if spec.upper:
            _zero(kb, elem, spec.width, dst, off, kb.const(0), split)
            _copy(kb, elem, spec.width, src, off, dst, off, split, f["cols"])
        else:
            _copy(kb, elem, spec.width, src, off, dst, off, kb.const(0), split)
            _zero(kb, elem, spec.width, dst, off, split, f["cols"])
    return kb.finish()


def store_dims_name(dtype: DType, count: int) -> str:
    return f"store_dims_{dtype.value}_n{count}"


def store_dims_kernel(dtype: DType, count: int) -> func.FuncOp:
    """out[i] = d<i> for i < count: dim values resolved from the dynamic dims (the fields d0, d1, ...)."""
    kb = KernelBuilder(store_dims_name(dtype, count),
                       Signature.of(("out", *(f"d{i}" for i in range(count))), buffers=("out",)))
    ti, t = Typed(kb, DType.INT64, 1), Typed(kb, dtype, 1)
    for i in range(count):
        t.store(ti.convert(kb.fields[f"d{i}"], t), kb.fields["out"], kb.const(i))
    return kb.finish()


def expect_kernel() -> func.FuncOp:
    """*status = code unless values[i] == expected[i] for all i < count (int64): a shape fed at run
    time that must equal the one the memory plan was made for. One work item."""
    kb = KernelBuilder("expect_i64", Signature.of(EXPECT_FIELDS, buffers=("values", "expected", "status")))
    f = kb.fields
    values, expected, status = (f[n] for n in ("values", "expected", "status"))
    with kb.loop(0, f["count"]) as lp:
        with kb.if_(kb.cmp("ne", kb.load(values, lp.iv, elem=i64), kb.load(expected, lp.iv, elem=i64))):
            kb.store(f["code"], status, kb.const(0), elem=i64)
    return kb.finish()


COUNT_NONZERO_FIELDS = ("in", "count", "size")


def count_nonzero_kernel(dtype: DType) -> func.FuncOp:
    """count[0] = the number of the `size` elements of `in` that are not 0 (NaN counts). One work item."""
    kb = KernelBuilder(f"count_nonzero_{dtype.value}", Signature.of(COUNT_NONZERO_FIELDS, buffers=("in", "count")))
    f, t = kb.fields, Typed(kb, dtype, 1)
    with kb.loop(0, f["size"], carried=[kb.const(0)]) as lp:
        nonzero = t.cmp("ne", t.load(f["in"], lp.iv), t.const(0))
        lp.next = [kb.add(lp.carried[0], kb.select(nonzero, kb.const(1), kb.const(0)))]
    kb.store(lp.results[0], f["count"], kb.const(0), elem=i64)
    return kb.finish()


def nonzero_fields(rank: int) -> tuple[str, ...]:
    return ("in", "out", "count", "size", *(f"d{a}" for a in range(rank)))


def nonzero_kernel(dtype: DType, rank: int) -> func.FuncOp:
    """out[a, k] = coordinate a of the k-th non-zero element of `in` (row-major order; dims d0..),
    `out` of shape [rank, count]. One work item."""
    kb = KernelBuilder(f"nonzero_{dtype.value}_r{rank}", Signature.of(nonzero_fields(rank), buffers=("in", "out")))
    f, t = kb.fields, Typed(kb, dtype, 1)
    with kb.loop(0, f["size"], carried=[kb.const(0)]) as lp:
        k = lp.carried[0]

        def store_coordinates():
            rest = lp.iv
            for a in reversed(range(rank)):
                kb.store(kb.rem(rest, f[f"d{a}"]), f["out"], kb.add(kb.mul(kb.const(a), f["count"]), k), elem=i64)
                rest = kb.div(rest, f[f"d{a}"])
            return [kb.add(k, kb.const(1))]

        lp.next = kb.if_else(t.cmp("ne", t.load(f["in"], lp.iv), t.const(0)), store_coordinates, lambda: [k])
    return kb.finish()
