"""Det -> one LU kernel call per matrix (kernels/determinant.py) over a scratch copy of the input."""
from __future__ import annotations

from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern

from pyflame_rt.dialects import graph_linalg as gl
from pyflame_rt.dialects.symbolic import dim_mul, numel
from pyflame_rt.targets.cpu.kernels.determinant import DET_FIELDS, DetSpec, det_kernel
from pyflame_rt.targets.cpu.lowerings.pattern import GraphToKernelPattern


class LowerDet(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gl.DetOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gl.DetOp) -> None:
        shape = L.shapes[op.input]
        m = shape[-1]
        spec = DetSpec(L.dtype(op.result))
        name = L.kernel(spec.name, lambda: det_kernel(spec))
        work = L.new_buffer(dim_mul(numel(shape), spec.dtype.itemsize))
        f = {"x": L.loc(op.input), "out": L.result_loc(op.result), "work": work, "m": m}
        L.call(name, [f[k] for k in DET_FIELDS], numel(shape[:-2]), work_per_item=dim_mul(m, dim_mul(m, m)))


PATTERNS = (LowerDet,)
