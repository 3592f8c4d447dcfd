"""ConvTranspose -> GEMM (cols = W^T @ X per image and group) + col2im scatter-add (1-D to 3-D);
Col2Im -> the scatter-add alone. float32 or float64 (the GEMM's F64 panels).

Per (image, group) the GEMM computes cols[Mg*KK, IS] = W_g^T[Mg*KK, Cg] @ X_g[Cg, IS]
with IS the input's spatial size. Constant weights are transposed at compile
time; weights fed at run time are read through transposed strides (the GEMM
packs A either way). The input is packed at run time. The col2im kernel then
adds every column into the output positions its taps reach (see
kernels/col2im.py) and starts from the bias, so the bias costs nothing extra.
"""
from __future__ import annotations

import numpy as np
from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern

from pyflame_rt.dialects import graph_nn as nn
from pyflame_rt.dialects.symbolic import dim_mul
from pyflame_rt.dtype import DType
from pyflame_rt.errors import UnsupportedOperatorError
from pyflame_rt.targets.cpu.kernels.col2im import COL2IM_FIELDS, SPATIAL, Col2imSpec, col2im_kernel
from pyflame_rt.targets.cpu.lowerings.pattern import GraphToKernelPattern
from pyflame_rt.targets.cpu.lowerings.conv import require_float32


def _static(shape, what: str) -> list[int]:
    if not all(isinstance(d, int) for d in shape):
        raise UnsupportedOperatorError(f"the CPU backend needs a static {what}, got {list(map(str, shape))}")
    return list(shape)


def _as_3d(vals: list[int], fill: int) -> list[int]:
    return [fill] * (3 - len(vals)) + list(vals)


class LowerConvTranspose(GraphToKernelPattern):
    float32_only = (nn.ConvTransposeOp,)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.ConvTransposeOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: nn.ConvTransposeOp) -> None:
        dtype = require_float32(L, op, also=(DType.FLOAT64,))
        x_shape, out_shape = L.shapes[op.input], L.shapes[op.result]
        nsp = len(x_shape) - 2
        if nsp > 3:
            raise UnsupportedOperatorError(f"the CPU backend supports 1-D to 3-D ConvTranspose, not {nsp}-D")
        w_shape = _static(L.shapes[op.weight], "ConvTranspose weight shape")
        g = op.groups
        c, mg = w_shape[0], w_shape[1]
        cg, m, taps = c // g, mg * g, int(np.prod(w_shape[2:]))
        in_sp = list(x_shape[2:])  # static: checked by the op's shape inference
        in_size = int(np.prod(in_sp))
        n = x_shape[0]
        w = L.const_value(op.weight)
        if w is not None:  # A = W_g^T per group: [G, Mg*KK, Cg], rows (output channel, tap)
            a = L.add_weight("conv_transpose_weight", w.astype(dtype.numpy).reshape(g, cg, mg * taps).transpose(0, 2, 1))
            a_strides, a_gs = (cg, 1), mg * taps * cg
        else:  # W [G*Cg, Mg*KK] read transposed
            a, a_strides, a_gs = L.loc(op.weight), (1, mg * taps), cg * mg * taps
        cols = L.new_buffer(dim_mul(n, m * taps * in_size * dtype.itemsize))
        L.emit_gemm(a=None, a_loc=a, a_strides=a_strides, m=mg * taps, k=cg, n=in_size, out=cols,
                    b_value=op.input, b_strides=(in_size, 1, cg * in_size), b_batch=dim_mul(n, g), batch=n, groups=g,
                    a_gs=a_gs, c_gs=mg * taps * in_size, c_bs=m * taps * in_size, dtype=dtype)
        _scatter_add(L, op, cols, op.bias, n, m, kernel=w_shape[2:], blocks=in_sp, image=list(out_shape[2:]),
                     dtype=dtype)


class LowerCol2Im(GraphToKernelPattern):
    """Col2Im's input [N, C * KK, L] is already the col2im kernel's [N, C, KK, L] columns."""

    float32_only = (nn.Col2ImOp,)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.Col2ImOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: nn.Col2ImOp) -> None:
        dtype = require_float32(L, op, also=(DType.FLOAT64,))
        n, c, *_ = L.shapes[op.result]
        (m,) = _static((c,), "Col2Im channel count")
        _scatter_add(L, op, L.loc(op.input), None, n, m,
                     kernel=op.ints("block_shape"), blocks=op.block_counts(), image=op.ints("image_shape"), dtype=dtype)


def _scatter_add(L, op, cols, bias, n, m: int, *, kernel, blocks, image, dtype: DType) -> None:
    """out[N, M, *image] = bias + the columns [N, M, KK, *blocks] added at each tap's positions."""
    nsp = len(image)
    geometry = {"k": _as_3d(kernel, 1), "i": _as_3d(blocks, 1), "o": _as_3d(image, 1),
                "s": _as_3d(op.ints("strides"), 1), "dl": _as_3d(op.ints("dilations"), 1),
                "p": _as_3d(op.ints("pads")[:nsp], 0)}
    width = L.target.vector_width * 4 // dtype.itemsize if geometry["s"][2] == 1 else 1
    spec = Col2imSpec(width, bias is not None, dtype)
    name = L.kernel(spec.name, lambda: col2im_kernel(spec))
    fields = {"cols": cols, "out": L.result_loc(op.result), "bias": L.loc(bias) if bias is not None else L.null_buffer,
              "m": m, **{f"{p}{axis}": vals[i] for p, vals in geometry.items() for i, axis in enumerate(SPATIAL)}}
    L.call(name, [fields[k] for k in COL2IM_FIELDS], dim_mul(n, m),
           work_per_item=int(np.prod(kernel)) * int(np.prod(blocks)))


PATTERNS = (LowerConvTranspose, LowerCol2Im)
