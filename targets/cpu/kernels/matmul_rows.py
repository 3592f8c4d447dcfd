"""Matrix product row by row, for element types the float32 GEMM does not take (float64).

Work item = one row of C: C[b, i, :] = sum_k A[b, i, k] * B[b, k, :] in the element type's own
precision. The row of C is zeroed, then each k adds A[b, i, k] times row k of B (`width`-vector
FMAs, then a scalar tail): no temporaries beyond C, B's rows stream through the cache while the C
row stays in L1. Without the GEMM's register blocking and packing it runs at a fraction of its
speed, but exactly in double precision (no float32 narrowing).
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import func

from pyflame_rt.dtype import DType
from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature
from pyflame_rt.targets.cpu.kernels.typed import Typed

# A's and B's batch strides: 0 when one matrix serves every batch
MATMUL_ROWS_FIELDS = ("a", "b", "c", "m", "n", "k", "a_bs", "b_bs")


@dataclass(frozen=True)
class MatMulRowsSpec:
    dtype: DType
    width: int  # lanes per vector of this element type

    @property
    def name(self) -> str:
        return f"matmul_rows_{self.dtype.value}_w{self.width}"


def matmul_rows_kernel(spec: MatMulRowsSpec) -> func.FuncOp:
    kb = KernelBuilder(spec.name, Signature.of(MATMUL_ROWS_FIELDS, buffers=("a", "b", "c")))
    f = kb.fields
    a, b, c = f["a"], f["b"], f["c"]
    zero = kb.const(0)
    with kb.loop(kb.begin, kb.end) as item:
        batch = kb.div(item.iv, f["m"])
        a_row = kb.add(kb.mul(batch, f["a_bs"]), kb.mul(kb.rem(item.iv, f["m"]), f["k"]))
        b_mat = kb.mul(batch, f["b_bs"])
        c_row = kb.mul(item.iv, f["n"])

        def clear(j, w):
            t = Typed(kb, spec.dtype, w)
            t.store(t.const(0), c, kb.add(c_row, j))

        kb.strip_mined(zero, f["n"], spec.width, clear)
        with kb.loop(0, f["k"]) as kl:
            b_row = kb.add(b_mat, kb.mul(kl.iv, f["n"]))

            def axpy(j, w):
                t = Typed(kb, spec.dtype, w)
                a_ik = t.load(a, kb.add(a_row, kl.iv), splat=True)
                dst = kb.add(c_row, j)
                t.store(t.fma(a_ik, t.load(b, kb.add(b_row, j)), t.load(c, dst)), c, dst)

            kb.strip_mined(zero, f["n"], spec.width, axpy)
    return kb.finish()
