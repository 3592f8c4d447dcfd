"""Det kernel: one work item per matrix, LU factorization with partial pivoting.

The matrix is copied to its slice of a scratch buffer and eliminated in place; the
determinant is the product of the pivots, negated once per row swap. A pivot of
zero (the column below the diagonal is all zero) makes the matrix singular: the
determinant becomes 0 and that column's elimination is skipped, so no division by
zero happens.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import func

from pyflame_rt.dtype import DType
from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature
from pyflame_rt.targets.cpu.kernels.typed import Typed

DET_FIELDS = ("x", "out", "work", "m")


@dataclass(frozen=True)
class DetSpec:
    dtype: DType  # float32 or float64, computed in that type

    @property
    def name(self) -> str:
        return f"det_{self.dtype.value}"


def det_kernel(spec: DetSpec) -> func.FuncOp:
    kb = KernelBuilder(spec.name, Signature.of(DET_FIELDS, buffers=("x", "out", "work")))
    x, out, work, m = (kb.fields[n] for n in DET_FIELDS)
    t = Typed(kb, spec.dtype, 1)
    with kb.loop(kb.begin, kb.end) as item:
        base = kb.mul(item.iv, kb.mul(m, m))
        with kb.loop(0, kb.mul(m, m)) as j:
            t.store(t.load(x, kb.add(base, j.iv)), work, kb.add(base, j.iv))

        def at(row, col):
            return kb.add(base, kb.add(kb.mul(row, m), col))

        with kb.loop(0, m, carried=[t.const(1.0)]) as col:
            k = col.iv
            with kb.loop(k, m, carried=[t.const(-1.0), k]) as r:  # the row with the largest |a[r, k]|
                a = t.abs(t.load(work, at(r.iv, k)))
                better = t.cmp("gt", a, r.carried[0])
                r.next = [t.select(better, a, r.carried[0]), kb.select(better, r.iv, r.carried[1])]
            pivot_row = r.results[1]
            swapped = kb.cmp("ne", pivot_row, k)
            with kb.if_(swapped):
                with kb.loop(0, m) as c:
                    upper, lower = t.load(work, at(k, c.iv)), t.load(work, at(pivot_row, c.iv))
                    t.store(lower, work, at(k, c.iv))
                    t.store(upper, work, at(pivot_row, c.iv))
            pivot = t.load(work, at(k, k))
            det = t.mul(col.carried[0], pivot)
            col.next = [t.select(swapped, t.neg(det), det)]
            with kb.if_(t.cmp("ne", pivot, t.const(0.0))):
                below = kb.add(k, kb.const(1))
                with kb.loop(below, m) as i:
                    factor = t.div(t.load(work, at(i.iv, k)), pivot)
                    with kb.loop(below, m) as c:
                        v = t.sub(t.load(work, at(i.iv, c.iv)), t.mul(factor, t.load(work, at(k, c.iv))))
                        t.store(v, work, at(i.iv, c.iv))
        t.store(col.results[0], out, item.iv)
    return kb.finish()
