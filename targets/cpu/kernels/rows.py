"""Row kernels: reductions, ArgMax/ArgMin, Softmax / LogSoftmax and LayerNorm.

A tensor is viewed as [outer, R, inner] around the reduced (normalized) axes; every
(outer, inner) pair is one *row* of R elements at stride `inner`, and rows are the
parallel work items. Rows with stride 1 (the common case: the last axis) run in
vectors of `width` lanes along R with a scalar tail, and each row takes one pass per
statistic (max, then sum of exp, then the scale for Softmax; mean, variance, then the
normalization for LayerNorm) while the row is hot in cache. Strided rows of plain
reductions run `width` adjacent rows at once, one per lane (`across`: a channels-last
global pool reads contiguous vectors, not one element per page); other strided rows
run the same code with one lane.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from xdsl.dialects import arith, func, llvm
from xdsl.ir import SSAValue

from pyflame_rt.dtype import DType
from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature
from pyflame_rt.targets.cpu.kernels import fast_math as fm
from pyflame_rt.targets.cpu.kernels.typed import Typed

# ctx fields shared by the lowering and the kernels
ROW_FIELDS = ("in", "out", "r", "inner", "scale", "bias", "mean", "rstd")

# reduce kind -> (accumulate, initial value, pre-map, post-map(t, acc, count))
_COMBINE = {"sum": "add", "mean": "add", "l2": "add", "l1": "add", "sum_square": "add", "prod": "mul",
            "max": "max", "min": "min", "log_sum": "add", "log_sum_exp": "add"}
_PRE: dict[str, Callable] = {
    "l2": lambda t, x: t.mul(x, x), "sum_square": lambda t, x: t.mul(x, x), "l1": lambda t, x: t.abs(x),
}
_POST: dict[str, Callable] = {
    "mean": lambda t, acc, n: t.div(acc, n), "l2": lambda t, acc, n: t.kb.intrinsic("llvm.sqrt", acc),
    "log_sum": lambda t, acc, n: fm.log(t, acc),
}
RUNNING_KINDS = ("cumsum", "cumprod")  # running totals: one sequential lane per row
ROW_KINDS = (*_COMBINE, "argmax", "argmin", "softmax", "log_softmax", "layer_norm", *RUNNING_KINDS)


@dataclass(frozen=True)
class RowSpec:
    kind: str                 # a reduce kind, argmax/argmin, softmax, log_softmax, layer_norm
    dtype: DType              # input element type
    width: int                # lanes along R (1 for strided rows), or adjacent rows if across
    params: tuple = ()        # layer_norm: (epsilon, store stats); argmax: (select_last_index,)
    across: bool = False      # lanes are `width` adjacent strided rows (reductions only)

    @property
    def name(self) -> str:
        p = "_".join(str(x).replace(".", "p").replace("-", "m") for x in self.params)
        return f"row_{self.kind}_{self.dtype.value}_w{self.width}{'_x' if self.across else ''}{'_' + p if p else ''}"


def reduces_across(kind: str) -> bool:
    """Kinds whose strided rows can run one row per lane: plain folds, no cross-lane step."""
    return kind in _COMBINE and kind != "log_sum_exp"


def _identity(t: Typed, combine: str):
    """The neutral element of the combine op (lowest / highest value for max / min)."""
    if combine in ("add", "mul"):
        return t.const(0 if combine == "add" else 1)
    if t.is_float:
        return t.const(float("-inf") if combine in ("max", "max_num") else float("inf"))
    low, high = t.integer_range(t.elem.bitwidth)
    return t.const(low if combine in ("max", "max_num") else high)


class _Row:
    """One row: element r is at base + r * stride; passes over it vectorize along r."""

    def __init__(self, kb: KernelBuilder, spec: RowSpec, base, stride, length, scratch, lanes: int = 1):
        """lanes > 1: `lanes` adjacent rows (base .. base + lanes - 1) folded one per lane."""
        self.kb, self.spec, self.base, self.stride, self.n = kb, spec, base, stride, length
        self.scratch, self.lanes = scratch, lanes

    def index(self, r):
        return self.kb.add(self.base, self.kb.mul(r, self.stride))

    def fold(self, fn: Callable[[Typed, SSAValue], SSAValue | None], combine: str | None = None):
        """For r in row: v = fn(t, r) (fn may store); returns the combined v if combine (a scalar, or
        one per lane for `lanes` rows)."""
        kb = self.kb
        w = 1 if self.spec.across else self.spec.width  # an across kernel's single rows are strided
        if self.lanes > 1:
            tl = Typed(kb, self.spec.dtype, self.lanes)
            with kb.loop(0, self.n, 1, carried=[_identity(tl, combine)] if combine else []) as lp:
                v = fn(tl, lp.iv)
                if combine:
                    lp.next = [getattr(tl, combine)(lp.carried[0], v)]
            return lp.results[0] if combine else None
        t1 = Typed(kb, self.spec.dtype, 1)
        tw = Typed(kb, self.spec.dtype, w)
        vec_end = kb.mul(kb.div(self.n, kb.const(w)), kb.const(w)) if w > 1 else kb.const(0)
        acc = None
        if w > 1:
            with kb.loop(0, vec_end, w, carried=[_identity(tw, combine)] if combine else []) as lp:
                v = fn(tw, lp.iv)
                if combine:
                    lp.next = [getattr(tw, combine)(lp.carried[0], v)]
            acc = self._horizontal(tw, t1, lp.results[0], combine) if combine else None
        init = [acc if acc is not None else _identity(t1, combine)] if combine else []
        with kb.loop(vec_end, self.n, 1, carried=init) as lp:
            v = fn(t1, lp.iv)
            if combine:
                lp.next = [getattr(t1, combine)(lp.carried[0], v)]
        return lp.results[0] if combine else None

    def _horizontal(self, tw: Typed, t1: Typed, v, combine: str):
        """Combine a vector's lanes: spill to the stack, fold the scalars in order."""
        kb = self.kb
        kb.store(v, self.scratch, kb.const(0), elem=tw.elem)
        acc = kb.load(self.scratch, kb.const(0), elem=tw.elem)
        for i in range(1, tw.width):
            acc = getattr(t1, combine)(acc, kb.load(self.scratch, kb.const(i), elem=tw.elem))
        return acc


def row_kernel(spec: RowSpec) -> func.FuncOp:
    kb = KernelBuilder(spec.name, Signature.of(ROW_FIELDS, buffers=("in", "out", "scale", "bias", "mean", "rstd")))
    f = kb.fields
    src, dst, scale_p, bias_p = f["in"], f["out"], f["scale"], f["bias"]
    # the horizontal step's stack buffer (rows folded along R in vectors)
    along_r = spec.width > 1 and not spec.across
    scratch = kb.scratch(spec.width, Typed(kb, spec.dtype, 1).elem) if along_r else None
    inner, n = f["inner"], f["r"]

    def run(o, j, lanes: int) -> None:
        row = _Row(kb, spec, kb.add(kb.mul(kb.mul(o, n), inner), j), inner, n, scratch, lanes)
        _BODIES[_family(spec.kind)](kb, spec, row, src, dst, kb.add(kb.mul(o, inner), j), scale_p, bias_p,
                                    f["mean"], f["rstd"])

    if not spec.across:  # an item is a row
        with kb.loop(kb.begin, kb.end) as item:
            run(kb.div(item.iv, inner), kb.rem(item.iv, inner), 1)
        return kb.finish()
    # an item is `width` adjacent rows; the last block of a short `inner` goes row by row
    w = spec.width
    blocks = kb.ceil_div(inner, w)
    with kb.loop(kb.begin, kb.end) as item:
        o, j0 = kb.div(item.iv, blocks), kb.mul(kb.rem(item.iv, blocks), kb.const(w))
        full = kb.cmp("sle", kb.add(j0, kb.const(w)), inner)

        def rows_one_by_one():
            with kb.loop(j0, inner) as j:
                run(o, j.iv, 1)

        kb.if_else(full, lambda: run(o, j0, w), rows_one_by_one)
    return kb.finish()


def _family(kind: str) -> str:
    return kind if kind in ("argmax", "argmin", "softmax", "log_softmax", "layer_norm", *RUNNING_KINDS) else "reduce"


def _count(t: Typed, row: _Row):
    """R as a divisor: at least 1, so an empty row's mean is 0 (onnxruntime's), not 0 / 0."""
    n = row.kb.max(row.n, row.kb.const(1))
    return row.kb.cast(llvm.SIToFPOp, n, t.elem) if t.is_float else n


def _reduce(kb, spec, row: _Row, src, dst, out_index, *_):
    combine = _COMBINE[spec.kind]
    pre = _PRE.get(spec.kind, lambda t, x: x)
    if spec.kind == "log_sum_exp":
        t1 = Typed(kb, spec.dtype, 1)
        m = row.fold(lambda t, r: t.load(src, row.index(r)), "max")
        # an infinite max is the result itself (x - m would be inf - inf = NaN): shift by 0 instead,
        # so exp / sum / log give +inf for a +inf element and -inf for a row of -inf
        m = t1.select(t1.cmp("eq", t1.abs(m), t1.const(float("inf"))), t1.const(0.0), m)
        s = row.fold(lambda t, r: fm.exp(t, t.sub(t.load(src, row.index(r)), kb.splat(m, t.width))), "add")
        t1.store(t1.add(fm.log(t1, s), m), dst, out_index)
        return
    acc = row.fold(lambda t, r: pre(t, t.load(src, row.index(r))), combine)
    t = Typed(kb, spec.dtype, row.lanes)
    if spec.kind in _POST:
        acc = _POST[spec.kind](t, acc, kb.splat(_count(t, row), row.lanes))
    t.store(acc, dst, out_index)


def _arg(kb, spec, row: _Row, src, dst, out_index, *_):
    """Index of the first (or last, params[0]) extreme element; scalar loop. An empty row has none: it
    stores 0 without reading (the lowering's run-time check fails such a run, as onnxruntime does)."""
    t = Typed(kb, spec.dtype, 1)
    ti = Typed(kb, DType.INT64, 1)
    pred = ("ge" if spec.params[0] else "gt") if spec.kind == "argmax" else ("le" if spec.params[0] else "lt")

    def select_index():
        first = t.load(src, row.index(kb.const(0)))
        with kb.loop(1, row.n, 1, carried=[first, kb.const(0)]) as lp:
            v = t.load(src, row.index(lp.iv))
            better = t.cmp(pred, v, lp.carried[0])
            lp.next = [t.select(better, v, lp.carried[0]), ti.select(better, lp.iv, lp.carried[1])]
        return [lp.results[1]]

    index = kb.if_else(kb.cmp("sgt", row.n, kb.const(0)), select_index, lambda: [kb.const(0)])[0]
    ti.store(index, dst, out_index)


def _softmax(kb, spec, row: _Row, src, dst, *_):
    """exp(x - max) / sum. A float16 / bfloat16 Softmax sums the exps as stored and divides by that
    sum rounded to the storage type, as every step of a computation in the tensor's own type does
    (onnx's reference); the float32 compute type only removes the error of the sum. The max may
    skip NaNs (max_num): a NaN element makes its exp, the sum and so the whole row NaN all the same,
    and x - max <= 0 needs no overflow handling in the exp."""
    m = row.fold(lambda t, r: t.load(src, row.index(r)), "max_num")

    def exp_store(t, r):
        e = fm.exp(t, t.sub(t.load(src, row.index(r)), kb.splat(m, t.width)), nonpositive=True)
        if spec.kind == "softmax":
            t.store(e, dst, row.index(r))
            return t.rounded(e)
        return e

    s = row.fold(exp_store, "add")
    t1 = Typed(kb, spec.dtype, 1)
    if spec.kind == "softmax" and t1.narrow:
        s = t1.rounded(s)
        row.fold(lambda t, r: t.store(t.div(t.load(dst, row.index(r)), kb.splat(s, t.width)), dst, row.index(r)))
    elif spec.kind == "softmax":
        inv = t1.div(t1.const(1.0), s)
        row.fold(lambda t, r: t.store(t.mul(t.load(dst, row.index(r)), kb.splat(inv, t.width)), dst, row.index(r)))
    else:
        shift = t1.add(m, fm.log(t1, s))
        row.fold(lambda t, r: t.store(t.sub(t.load(src, row.index(r)), kb.splat(shift, t.width)),
                                      dst, row.index(r)))


def _layer_norm(kb, spec, row: _Row, src, dst, out_index, scale_p, bias_p, mean_p, rstd_p):
    """Two-pass mean / variance (no cancellation), then y = (x - mean) * rstd * scale + bias. The
    mean is the first element plus the mean of the differences to it: exact for a constant row
    (whose output is then the bias), and a sum of smaller terms otherwise."""
    t1 = Typed(kb, spec.dtype, 1)
    count = _count(t1, row)
    first = kb.if_else(kb.cmp("sgt", row.n, kb.const(0)), lambda: [t1.load(src, row.base)],
                       lambda: [t1.const(0.0)])[0]  # an empty row reads nothing
    shifted = row.fold(lambda t, r: t.sub(t.load(src, row.index(r)), kb.splat(first, t.width)), "add")
    mean = t1.add(first, t1.div(shifted, count))

    def centered(t, r):
        return t.sub(t.load(src, row.index(r)), kb.splat(mean, t.width))

    var = t1.div(row.fold(lambda t, r: t.mul(centered(t, r), centered(t, r)), "add"), count)
    rstd = t1.div(t1.const(1.0), kb.intrinsic("llvm.sqrt", t1.add(var, t1.const(spec.params[0]))))
    if spec.params[1]:  # the optional Mean / InvStdDev outputs (float32, one per row)
        stats = Typed(kb, DType.FLOAT32, 1)
        stats.store(t1.convert(mean, stats), mean_p, out_index)
        stats.store(t1.convert(rstd, stats), rstd_p, out_index)

    def normalize(t, r):
        y = t.mul(centered(t, r), kb.splat(rstd, t.width))
        y = t.fma(y, t.load(scale_p, r), t.load(bias_p, r))
        t.store(y, dst, row.index(r))

    row.fold(normalize)


def _running(kb, spec, row: _Row, src, dst, *_):
    """Sequential running sum or product (params: exclusive, reverse); one lane."""
    exclusive, reverse = spec.params
    t = Typed(kb, spec.dtype, 1)
    product = spec.kind == "cumprod"
    with kb.loop(0, row.n, 1, carried=[t.const(1 if product else 0)]) as lp:
        r = kb.sub(kb.sub(row.n, kb.const(1)), lp.iv) if reverse else lp.iv
        total = (t.mul if product else t.add)(lp.carried[0], t.load(src, row.index(r)))
        t.store(lp.carried[0] if exclusive else total, dst, row.index(r))
        lp.next = [total]


_BODIES = {"cumsum": _running, "cumprod": _running, "reduce": _reduce, "argmax": _arg, "argmin": _arg, "softmax": _softmax, "log_softmax": _softmax,
           "layer_norm": _layer_norm}


TOPK_FIELDS = ("in", "values", "indices", "r", "inner", "k")


@dataclass(frozen=True)
class TopKSpec:
    dtype: DType
    largest: bool

    @property
    def name(self) -> str:
        return f"topk_{'largest' if self.largest else 'smallest'}_{self.dtype.value}"


def topk_kernel(spec: TopKSpec) -> func.FuncOp:
    """Per row, keep a sorted list of the best k in the outputs: each element walks the list from
    the end, shifting worse entries down one slot (strictly better only, so ties keep index order)."""
    kb = KernelBuilder(spec.name, Signature.of(TOPK_FIELDS, buffers=("in", "values", "indices")))
    f = kb.fields
    src, vals, idxs = f["in"], f["values"], f["indices"]
    t, ti = Typed(kb, spec.dtype, 1), Typed(kb, DType.INT64, 1)
    inner, k, n = f["inner"], f["k"], f["r"]
    pred = "gt" if spec.largest else "lt"
    with kb.loop(kb.begin, kb.end) as item:
        o, j = kb.div(item.iv, inner), kb.rem(item.iv, inner)
        src_row = _Row(kb, RowSpec("topk", spec.dtype, 1), kb.add(kb.mul(kb.mul(o, n), inner), j), inner, n, None)
        out_row = _Row(kb, RowSpec("topk", spec.dtype, 1), kb.add(kb.mul(kb.mul(o, k), inner), j), inner, k, None)
        with kb.loop(0, n, 1, carried=[kb.const(0)]) as lp:
            v = t.load(src, src_row.index(lp.iv))
            count = lp.carried[0]
            with kb.loop(0, k) as slot:
                q = kb.sub(kb.sub(k, kb.const(1)), slot.iv)
                prev = kb.max(kb.sub(q, kb.const(1)), kb.const(0))  # clamped: never reads slot -1
                beats_q = kb._ins(arith.OrIOp(ti.cmp("ge", q, count),
                                              t.cmp(pred, v, t.load(vals, out_row.index(q)))))
                beats_prev = kb._ins(arith.AndIOp(ti.cmp("gt", q, ti.const(0)), kb._ins(arith.OrIOp(
                    ti.cmp("ge", prev, count), t.cmp(pred, v, t.load(vals, out_row.index(prev)))))))
                with kb.if_(beats_q):
                    with kb.if_(beats_prev):
                        t.store(t.load(vals, out_row.index(prev)), vals, out_row.index(q))
                        ti.store(ti.load(idxs, out_row.index(prev)), idxs, out_row.index(q))
                    with kb.if_(ti.logical_not(beats_prev)):
                        t.store(v, vals, out_row.index(q))
                        ti.store(lp.iv, idxs, out_row.index(q))
            lp.next = [kb.min(kb.add(count, kb.const(1)), k)]
    return kb.finish()
