"""Elementwise kernels with broadcasting, vectorized along the innermost dim.

The output is iterated as rows x inner. Each row's input offsets come from the
collapsed outer dims and per-input strides (0 = broadcast), all runtime values,
so one kernel serves every batch size. Work items are (row, inner chunk) pairs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from xdsl.dialects import func
from xdsl.ir import SSAValue

from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder

INNER_CHUNK = 8192  # elements per work item along the inner dim

# op name -> (arity, body(kb, operands) -> result)
ELEMENTWISE_OPS: dict[str, tuple[int, Callable[[KernelBuilder, list[SSAValue], int], SSAValue]]] = {
    "add": (2, lambda kb, x, w: kb.fadd(x[0], x[1])),
    "sub": (2, lambda kb, x, w: kb.fsub(x[0], x[1])),
    "mul": (2, lambda kb, x, w: kb.fmul(x[0], x[1])),
    "div": (2, lambda kb, x, w: kb.fdiv(x[0], x[1])),
    "relu": (1, lambda kb, x, w: kb.fmax(x[0], kb.fconst(0.0, w))),
    "copy": (1, lambda kb, x, w: x[0]),
}


@dataclass(frozen=True)
class ElementwiseSpec:
    """What a generated kernel is specialized on (its cache key)."""

    op: str
    outer_rank: int                 # number of collapsed outer dims
    inner_contiguous: tuple[bool, ...]  # per input: inner stride 1 (True) or 0 (broadcast)
    width: int

    @property
    def name(self) -> str:
        pattern = "".join("v" if c else "s" for c in self.inner_contiguous)
        return f"ew_{self.op}_r{self.outer_rank}_{pattern}_w{self.width}"

    @property
    def num_fields(self) -> int:
        # out, inputs..., inner, nchunks, then per outer dim: size and one stride per input
        n_in = len(self.inner_contiguous)
        return 1 + n_in + 2 + self.outer_rank * (1 + n_in)


def elementwise_kernel(spec: ElementwiseSpec) -> func.FuncOp:
    arity, body = ELEMENTWISE_OPS[spec.op]
    n_in = len(spec.inner_contiguous)
    assert n_in == arity
    kb = KernelBuilder(spec.name)
    out = kb.ptr_field(0)
    ins = [kb.ptr_field(1 + i) for i in range(n_in)]
    inner = kb.field(1 + n_in)
    nchunks = kb.field(2 + n_in)
    dims = []
    for d in range(spec.outer_rank):
        base = 3 + n_in + d * (1 + n_in)
        dims.append((kb.field(base), [kb.field(base + 1 + i) for i in range(n_in)]))
    chunk = kb.const(INNER_CHUNK)

    with kb.loop(kb.begin, kb.end) as item:
        row = kb.div(item.iv, nchunks)
        c = kb.rem(item.iv, nchunks)
        # decompose the row index over the outer dims (innermost last)
        offs = [kb.const(0) for _ in range(n_in)]
        rest = row
        for size, strides in reversed(dims):
            idx = kb.rem(rest, size)
            rest = kb.div(rest, size)
            offs = [kb.add(o, kb.mul(idx, s)) for o, s in zip(offs, strides)]
        lo = kb.mul(c, chunk)
        hi = kb.min(kb.add(lo, chunk), inner)
        out_row = kb.mul(row, inner)

        def step(iv, w):
            vals = []
            for p, o, contiguous in zip(ins, offs, spec.inner_contiguous):
                if contiguous:
                    vals.append(kb.load(p, kb.add(o, iv), w))
                else:
                    vals.append(kb.splat(kb.load(p, o), w))
            kb.store(body(kb, vals, w), out, kb.add(out_row, iv))

        kb.strip_mined(lo, hi, spec.width, step)
    return kb.finish()
